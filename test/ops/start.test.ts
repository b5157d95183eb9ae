import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { writeFile } from 'node:fs/promises'
import { createServer, type Server } from 'node:net'
import path from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  baseEnv,
  copyProject,
  createTestDatabase,
  freePort,
  listens,
  type ProjectCopy,
  SERVICE_DID,
  spawnServer,
  type TestDatabase,
} from '../helpers/index.js'

const run = promisify(execFile)
let copy: ProjectCopy
let testDb: TestDatabase
let blocker: Server
let busyPort: number

beforeAll(async () => {
  ;[copy, testDb] = await Promise.all([copyProject(), createTestDatabase()])
  blocker = createServer()
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve))
  busyPort = (blocker.address() as { port: number }).port
})
afterAll(async () => {
  blocker?.close()
  await copy?.remove()
  await testDb?.drop()
})

const dotenv = (vars: Record<string, string>) =>
  writeFile(
    path.join(copy.dir, '.env'),
    Object.entries(vars)
      .map(([name, value]) => `${name}=${value}\n`)
      .join(''),
  )

/** Runs a command in the copy to its end; a failure resolves with its exit code and output. */
const runToEnd = (file: string, args: string[], env: Record<string, string> = baseEnv()) =>
  run(file, args, { cwd: copy.dir, env }).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (err: { code: number; stdout: string; stderr: string }) => err,
  )

/** One sentence, no stack trace. */
const expectPortRefusal = (stderr: string, port: number) => {
  expect(stderr).toContain(`port ${port} is in use; set PORT to a free port.`)
  expect(stderr).not.toMatch(/^\s+at /m)
}

describe('npm start', () => {
  it('refuses a port in use at once, before compiling or starting a database', async () => {
    await dotenv({ HOST: '127.0.0.1', PORT: String(busyPort) })
    const result = await runToEnd('npm', ['start'])
    expect(result.code).toBe(1)
    expectPortRefusal(result.stderr, busyPort)
    expect(existsSync(path.join(copy.dir, 'dist'))).toBe(false)
    expect(existsSync(path.join(copy.dir, 'data'))).toBe(false)
  })

  it('reads .env, compiles only when dist/ is stale, and stops when npm is sent SIGTERM', async () => {
    const port = await freePort()
    await dotenv({ HOST: '127.0.0.1', PORT: String(port), DATABASE_URL: testDb.url, SERVICE_DID })
    const npmStart = (env: Record<string, string>) => spawnServer(['npm', 'start'], { cwd: copy.dir, env })

    const first = await npmStart(baseEnv())
    expect(first.url).toBe(`http://127.0.0.1:${port}`)
    expect(first.output()).toContain('npm start: settings from .env')
    // Each slow step is said before it is taken.
    expect(first.output()).toContain('npm start: checking which sources changed since the last build of dist/')
    expect(first.output()).toContain('npm start: compiling TypeScript into dist/')
    expect(first.output()).toContain('npm start: loading the server (dist/main.js)')
    // Without APNs settings it says so, and how to turn push on.
    expect(first.output()).toContain(
      'push notifications off (set APNS_KEY_FILE, APNS_KEY_ID, APNS_TEAM_ID and APNS_TOPIC',
    )
    expect((await fetch(`${first.url}/xrpc/_health`)).status).toBe(200)
    // The npm process, as a supervisor or `kill` would signal it.
    first.process.kill('SIGTERM')
    expect(await first.exited).toBe(0)
    expect(first.output()).toContain('shutdown complete')
    expect(await listens(port)).toBe(false)

    // dist/ is current now; a variable set in the environment beats .env.
    const otherPort = await freePort()
    const second = await npmStart({ ...baseEnv(), PORT: String(otherPort) })
    expect(second.url).toBe(`http://127.0.0.1:${otherPort}`)
    // Told from file times, without loading the compiler.
    expect(second.output()).not.toContain('checking which sources changed')
    expect(second.output()).not.toContain('compiling')
    second.process.kill('SIGINT')
    expect(await second.exited).toBe(0)

    // The compiled server run directly (as under a supervisor) checks the port first too.
    const direct = await runToEnd(process.execPath, ['dist/main.js'], {
      ...baseEnv(),
      HOST: '127.0.0.1',
      PORT: String(busyPort),
      DATABASE_URL: 'postgres://nobody@127.0.0.1:1/none',
    })
    expect(direct.code).toBe(1)
    expectPortRefusal(direct.stderr, busyPort)
  }, 180_000)
})

describe('npm run dev', () => {
  it('reads .env as npm start does, the environment winning, and stops when npm is sent SIGTERM', async () => {
    const [port, otherPort] = [await freePort(), await freePort()]
    await dotenv({ HOST: '127.0.0.1', PORT: String(port), DATABASE_URL: testDb.url, SERVICE_DID })
    const npmDev = (env: Record<string, string>) => spawnServer(['npm', 'run', 'dev'], { cwd: copy.dir, env })

    const dev = await npmDev(baseEnv())
    expect(dev.url).toBe(`http://127.0.0.1:${port}`)
    expect(dev.output()).toContain('npm run dev: settings from .env')
    expect((await fetch(`${dev.url}/xrpc/_health`)).status).toBe(200)
    dev.process.kill('SIGTERM')
    await dev.exited
    expect(dev.output()).toContain('shutdown complete')
    expect(await listens(port)).toBe(false)

    const overridden = await npmDev({ ...baseEnv(), PORT: String(otherPort) })
    expect(overridden.url).toBe(`http://127.0.0.1:${otherPort}`)
    overridden.process.kill('SIGTERM')
    await overridden.exited
    expect(await listens(otherPort)).toBe(false)
  }, 180_000)
})
