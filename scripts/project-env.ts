import { existsSync } from 'node:fs'
import path from 'node:path'
import { projectRoot } from '../src/paths.js'

/**
 * Reads the project's `.env` into process.env, as `npm start`, `npm run dev`
 * and `npm run token` do; variables already set in the environment win.
 * With a command's name, says so on stderr when there was a file to read.
 * (Node's --env-file would fail without the file.)
 */
export function loadProjectEnv(command?: string): void {
  const file = path.join(projectRoot, '.env')
  if (!existsSync(file)) return
  process.loadEnvFile(file)
  if (command) {
    const shown = path.relative(process.cwd(), file) || file
    process.stderr.write(`${command}: settings from ${shown} (the environment overrides them)\n`)
  }
}
