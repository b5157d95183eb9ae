import { spawn, type ChildProcess } from 'node:child_process'
import path from 'node:path'
import { projectRoot } from '../../src/paths.js'
import { SERVICE_DID } from './users.js'

export interface ChildServer {
  url: string
  process: ChildProcess
  /** Everything the server logged so far. */
  output(): string
  /** Resolves with the exit code (or signal) once the process has ended. */
  exited: Promise<number | NodeJS.Signals | null>
}

/** The real server (src/main.ts) in a process of its own, on a free loopback port. */
export function startChildServer(env: Record<string, string>): Promise<ChildServer> {
  return spawnServer([process.execPath, '--import', 'tsx', path.join(projectRoot, 'src/main.ts')], {
    cwd: projectRoot,
    env: {
      ...baseEnv(),
      SERVICE_DID,
      HOST: '127.0.0.1',
      PORT: '0',
      LOG_LEVEL: 'info',
      // As testConfig: no Bluesky AppView to ask about blocks.
      APPVIEW_URL: 'off',
      // As testConfig: the suite may run as behind a pooler that keeps no prepared statements.
      ...(process.env.DATABASE_PREPARED_STATEMENTS
        ? { DATABASE_PREPARED_STATEMENTS: process.env.DATABASE_PREPARED_STATEMENTS }
        : {}),
      ...env,
    },
  })
}

/** What a child process needs of this one's environment, and nothing that configures the server. */
export const baseEnv = () => ({ PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '' })

/** A server started by `command` (node, npm start...), once it says it listens on loopback. */
export async function spawnServer(
  command: [string, ...string[]],
  opts: { cwd: string; env: Record<string, string> },
): Promise<ChildServer> {
  const [file, ...args] = command
  const child = spawn(file, args, { cwd: opts.cwd, env: opts.env, stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  const exited = new Promise<number | NodeJS.Signals | null>((resolve) =>
    child.once('exit', (code, signal) => resolve(code ?? signal)),
  )
  const url = await new Promise<string>((resolve, reject) => {
    // Generous: a first `npm start` compiles the project on a busy machine.
    const timer = setTimeout(() => reject(new Error(`server did not start:\n${output}`)), 90_000)
    const onData = (chunk: Buffer) => {
      output += chunk.toString()
      const match = /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(output)
      if (match) {
        clearTimeout(timer)
        resolve(match[1] as string)
      }
    }
    child.stdout.on('data', onData)
    child.stderr.on('data', onData)
    void exited.then((code) => {
      clearTimeout(timer)
      reject(new Error(`server exited (${String(code)}) before listening:\n${output}`))
    })
  })
  return { url, process: child, output: () => output, exited }
}
