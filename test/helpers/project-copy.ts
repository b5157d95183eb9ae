import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { chmod, copyFile, mkdir, mkdtemp, rm, symlink } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import { projectRoot } from '../../src/paths.js'

const run = promisify(execFile)

export interface ProjectCopy {
  dir: string
  remove(): Promise<void>
}

/**
 * The project's own files (what git tracks, and new files not yet committed)
 * in a directory of their own, sharing this checkout's node_modules: for
 * tests of what happens in a checkout (npm start, npm pack, .env) that must
 * not touch this one's dist/, data/ or .env.
 */
export async function copyProject(): Promise<ProjectCopy> {
  const dir = await mkdtemp(path.join(tmpdir(), 'catbird-project-'))
  // As root, PostgreSQL and npm's script runner may run as other users.
  await chmod(dir, 0o755)
  const { stdout } = await run('git', ['ls-files', '--cached', '--others', '--exclude-standard', '-z'], {
    cwd: projectRoot,
    maxBuffer: 16 * 1024 * 1024,
  })
  const files = stdout.split('\0').filter((file) => file && existsSync(path.join(projectRoot, file)))
  for (const file of files) {
    await mkdir(path.dirname(path.join(dir, file)), { recursive: true })
    await copyFile(path.join(projectRoot, file), path.join(dir, file))
  }
  await symlink(path.join(projectRoot, 'node_modules'), path.join(dir, 'node_modules'))
  return { dir, remove: () => rm(dir, { recursive: true, force: true }) }
}
