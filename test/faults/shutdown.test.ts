import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  countRows,
  createTestDatabase,
  lockWaiters,
  openKysely,
  SeedClient,
  startChildServer,
  type TestDatabase,
  TestUser,
  xrpcClient,
} from '../helpers/index.js'

let testDb: TestDatabase

beforeAll(async () => {
  testDb = await createTestDatabase()
})
afterAll(async () => {
  await testDb?.drop()
})

describe('graceful shutdown', () => {
  it('finishes every in-flight request on SIGTERM, then exits 0', async () => {
    // The sends wait on the held row for as long as it takes all 30 to arrive (longer on a loaded cluster): no timeout ends them first.
    const server = await startChildServer({
      DATABASE_URL: testDb.url,
      DATABASE_POOL_SIZE: '40',
      DATABASE_STATEMENT_TIMEOUT_MS: '30000',
      DATABASE_QUERY_TIMEOUT_MS: '31000',
    })
    const seed = new SeedClient(xrpcClient(server.url))
    const alice = await TestUser.create()
    const convo = await seed.createConvo(alice)

    // Hold the conversation row so 30 sends are provably inside the server when SIGTERM lands.
    const db = openKysely(testDb.url)
    const holder = await db.connection().execute(async (conn) => {
      await sql`BEGIN`.execute(conn)
      await sql`SELECT 1 FROM convo WHERE id = ${convo.id} FOR UPDATE`.execute(conn)
      const sends = Array.from({ length: 30 }, () => seed.sendMessage(alice, convo.id))
      // Wait until all 30 are blocked on the row lock inside the database (on every node of a cluster).
      await expect.poll(() => lockWaiters(db), { timeout: 15_000, interval: 100 }).toBe(30)
      server.process.kill('SIGTERM')
      await new Promise((r) => setTimeout(r, 300))
      await sql`COMMIT`.execute(conn)
      return Promise.all(sends)
    })
    expect(holder.map((r) => r.status)).toEqual(Array(30).fill(200))
    expect(await server.exited).toBe(0)
    expect(server.output()).toContain('shutdown complete')
    expect(await countRows(db, 'message')).toBe(30)
    await db.destroy()
  }, 60_000)
})
