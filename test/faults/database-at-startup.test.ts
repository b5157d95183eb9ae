import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTestDatabase, freePort, startChildServer, type TestDatabase } from '../helpers/index.js'

let testDb: TestDatabase

beforeAll(async () => {
  testDb = await createTestDatabase()
})
afterAll(async () => {
  await testDb?.drop()
})

/** What the server printed before it stopped, started with `env`; it must stop without listening. */
async function outputOfFailedStart(env: Record<string, string>): Promise<string> {
  const started = startChildServer(env)
  const err = await started.then(
    (server) => {
      server.process.kill('SIGKILL')
      throw new Error(`the server started: ${server.url}`)
    },
    (failure: Error) => failure,
  )
  expect(err.message).toMatch(/^server exited \(1\) before listening/)
  return err.message
}

const stackLine = /^\s+at /m

describe('a database that cannot be reached at start-up', () => {
  it('is tried again with one log line per attempt, then start-up stops naming the host (not the password) and the cause', async () => {
    const port = await freePort()
    const output = await outputOfFailedStart({
      DATABASE_URL: `postgres://catbird:very-secret-password@127.0.0.1:${port}/catbird`,
      DATABASE_STARTUP_WAIT_MS: '1500',
    })
    const attempts = output.split('\n').filter((line) => line.includes('cannot be reached'))
    expect(attempts.length).toBeGreaterThanOrEqual(2)
    for (const line of attempts) {
      expect(JSON.parse(line)).toMatchObject({
        level: 40,
        host: `127.0.0.1:${port}`,
        cause: expect.stringContaining('ECONNREFUSED'),
        msg: expect.stringMatching(/trying again in \d+ ms$/),
      })
    }
    expect(output).toContain(
      `PostgreSQL at 127.0.0.1:${port} could not be reached in 1.5 s (connect ECONNREFUSED 127.0.0.1:${port}); check DATABASE_URL and that the database is running.`,
    )
    expect(output).not.toContain('very-secret-password')
    expect(output).not.toMatch(stackLine)
  }, 120_000)

  it('is tried once with DATABASE_STARTUP_WAIT_MS=0, and the cause told is the real one', async () => {
    const port = await freePort()
    const output = await outputOfFailedStart({
      DATABASE_URL: `postgres://catbird@127.0.0.1:${port}/catbird`,
      DATABASE_STARTUP_WAIT_MS: '0',
    })
    expect(output).not.toContain('trying again')
    expect(output).toContain(
      `PostgreSQL at 127.0.0.1:${port} could not be reached (connect ECONNREFUSED 127.0.0.1:${port}); check DATABASE_URL`,
    )
  }, 120_000)

  it('that answers with an error stops start-up at once, with that error', async () => {
    const url = new URL(testDb.url)
    url.pathname = '/no_such_database'
    const output = await outputOfFailedStart({ DATABASE_URL: url.href, DATABASE_STARTUP_WAIT_MS: '60000' })
    expect(output).toContain(
      `PostgreSQL at ${url.hostname}:${url.port} refused the connection: database "no_such_database" does not exist; check DATABASE_URL.`,
    )
    expect(output).not.toContain('cannot be reached')
    expect(output).not.toMatch(stackLine)
  }, 120_000)
})
