import { randomUUID } from 'node:crypto'
import { sql, type Kysely } from 'kysely'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { handlers } from '../../src/api/index.js'
import { createDatabase } from '../../src/db/index.js'
import type { DatabaseSchema } from '../../src/db/schema.js'
import { sendMessage } from '../../src/services/messages.js'
import { toXrpcError } from '../../src/xrpc/errors.js'
import {
  countRows,
  createTestDatabase,
  message,
  NSID,
  openKysely,
  randomGroupId,
  startTcpProxy,
  startTestApp,
  SUITE,
  type TcpProxy,
  type TestApp,
  type TestDatabase,
  TestUser,
  type XrpcResponse,
} from '../helpers/index.js'
import { handler } from '../../src/xrpc/types.js'

// The database sits behind a proxy that can stop forwarding, which to the
// server looks like SIGSTOPped PostgreSQL processes (or a partition); only
// this file's connections freeze, not the cluster other files share.
const STATEMENT_TIMEOUT_MS = 800
const QUERY_TIMEOUT_MS = 1_000
const IDLE_IN_TRANSACTION_TIMEOUT_MS = 2_000
const HEALTH_TIMEOUT_MS = 300
// A request may wait for a connection, then for one query (see
// DATABASE_QUERY_TIMEOUT_MS); the rest is slack for a test machine whose two
// cores run several suites (1 s of it was missed by 60 ms there). A hang is
// the client's own timeout, 15 s.
const BOUND_MS = 2 * QUERY_TIMEOUT_MS + 2_000

let testDb: TestDatabase
let proxy: TcpProxy
let t: TestApp
/** The test's own reads: straight to the database, without the server's tight timeouts (slower on a cluster). */
let checks: Kysely<DatabaseSchema>
let alice: TestUser
let convoId: string
/** Freeze the database at the start of the next sendMessage handler: its one statement is what hangs. */
let freezeBeforeWrite = false
/** Freeze the database right after the next createConvo handler: its COMMIT is what hangs. */
let freezeBeforeCommit = false

const sendHandler = handlers[NSID.sendMessage]
const createHandler = handlers[NSID.createConvo]
const epochHandler = handlers[NSID.getEpoch]

beforeAll(async () => {
  testDb = await createTestDatabase()
  if (testDb.url !== testDb.directUrl) {
    // Behind a pooler (npm run test:pgbouncer) the server's startup parameters
    // do not arrive: the timeouts are the database's, as docs/operating.md tells operators.
    const admin = openKysely(testDb.directUrl, 1)
    const database = sql.id(new URL(testDb.directUrl).pathname.slice(1))
    await sql`ALTER DATABASE ${database} SET statement_timeout = ${sql.raw(String(STATEMENT_TIMEOUT_MS))}`.execute(
      admin,
    )
    await sql`ALTER DATABASE ${database} SET idle_in_transaction_session_timeout = ${sql.raw(
      String(IDLE_IN_TRANSACTION_TIMEOUT_MS),
    )}`.execute(admin)
    await admin.destroy()
  }
  proxy = await startTcpProxy(testDb.url)
  checks = openKysely(testDb.directUrl)
  t = await startTestApp({
    testDb: { url: proxy.url, directUrl: testDb.directUrl, drop: () => testDb.drop() },
    config: {
      DATABASE_STATEMENT_TIMEOUT_MS: String(STATEMENT_TIMEOUT_MS),
      DATABASE_QUERY_TIMEOUT_MS: String(QUERY_TIMEOUT_MS),
      DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS: String(IDLE_IN_TRANSACTION_TIMEOUT_MS),
      HEALTH_TIMEOUT_MS: String(HEALTH_TIMEOUT_MS),
      IDEMPOTENCY_WAIT_MS: '300',
    },
    handlers: {
      ...handlers,
      [NSID.sendMessage]: handler(NSID.sendMessage, { keyedWrites: sendHandler.keyedWrites }, async (req) => {
        if (freezeBeforeWrite) {
          freezeBeforeWrite = false
          proxy.freeze()
        }
        return sendHandler(req)
      }),
      [NSID.createConvo]: handler(
        NSID.createConvo,
        { keyedWrites: createHandler.keyedWrites, reserve: createHandler.reserve },
        async (req) => {
          const output = await createHandler(req)
          if (freezeBeforeCommit) {
            freezeBeforeCommit = false
            proxy.freeze()
          }
          return output
        },
      ),
      // A statement PostgreSQL has to cancel itself.
      [NSID.getEpoch]: handler(NSID.getEpoch, async (req) => {
        await sql`SELECT pg_sleep(10)`.execute(req.db)
        return epochHandler(req)
      }),
    },
  })
  alice = await TestUser.create()
  convoId = (await t.seed.createConvo(alice)).id
  // A keyed send before any freeze: with delegated writes (Citus) its function is made then, on a
  // connection of its own, so what freezes below is the write itself.
  await t.seed.sendMessage(alice, convoId, { idempotencyKey: randomUUID(), ciphertext: await message(alice, convoId) })
})
afterEach(() => proxy.thaw())
afterAll(async () => {
  await checks?.destroy()
  await t?.close()
  await proxy?.close()
})

async function timed<T>(fn: () => Promise<T>): Promise<{ result: T; ms: number }> {
  const started = performance.now()
  const result = await fn()
  return { result, ms: performance.now() - started }
}

const health = () =>
  fetch(`${t.url}/xrpc/_health`).then(async (res) => ({ status: res.status, body: await res.json() }))

/** Retries as a client would on 503 and 409 until an answer, or gives up after `ms`. */
async function retryUntilAnswered<T>(send: () => Promise<XrpcResponse<T>>, ms = 10_000) {
  const seen: number[] = []
  const deadline = Date.now() + ms
  for (;;) {
    const res = await send()
    if ((res.status !== 503 && res.status !== 409) || Date.now() > deadline) return { res, seen }
    seen.push(res.status)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

const storedMessages = async () => countRows(checks, 'message', sql`convo_id = ${convoId}`)

/**
 * A keyed sendMessage whose database freezes when its one statement is
 * sent: expects 503 within the bound, and returns the message count before
 * and the identical retry.
 */
async function keyedSendTimedOut() {
  const before = await storedMessages()
  const send = { idempotencyKey: randomUUID(), ciphertext: await message(alice, convoId) }
  const retry = () => t.seed.sendMessage(alice, convoId, send)
  freezeBeforeWrite = true
  const first = await timed(retry)
  expect(freezeBeforeWrite, 'the first attempt reached its statement').toBe(false)
  expect(first.result.status).toBe(503)
  expect(first.ms).toBeLessThan(BOUND_MS)
  return { stored: async () => (await storedMessages()) - before, retry }
}

/**
 * A keyed createConvo (a write in a transaction) whose database freezes once
 * its statements have run, so its COMMIT is what goes unanswered: expects
 * 503 within the bound, and returns the identical retry.
 */
async function keyedCreateTimedOutAtCommit() {
  const input = { groupId: randomGroupId(), cipherSuite: SUITE, idempotencyKey: randomUUID() }
  const retry = () => t.call(alice, NSID.createConvo, { input })
  freezeBeforeCommit = true
  const first = await timed(retry)
  expect(freezeBeforeCommit, 'the first attempt reached its COMMIT').toBe(false)
  expect(first.result.status).toBe(503)
  expect(first.ms).toBeLessThan(BOUND_MS)
  const stored = async () => countRows(checks, 'convo', sql`group_id = ${input.groupId}`)
  return { stored, retry }
}

describe('a frozen database', () => {
  it('gets requests a 503 within the bound and health a 503 within its own, and both recover when it answers again', async () => {
    expect((await t.seed.sendMessage(alice, convoId)).status).toBe(200)
    proxy.freeze()

    const probe = await timed(health)
    expect(probe.result).toEqual({
      status: 503,
      body: { version: expect.any(String), error: 'ServiceUnavailable', message: expect.any(String) },
    })
    expect(probe.ms).toBeLessThan(HEALTH_TIMEOUT_MS + 500)

    // More requests than the pool has connections: some wait for one. The messages are made
    // first, so that only the server's answer is timed.
    const ciphertexts = await Promise.all(Array.from({ length: 15 }, () => message(alice, convoId)))
    const flood = Array.from({ length: 30 }, (_, i) => {
      const ciphertext = ciphertexts[i >> 1] as Uint8Array
      return timed(async () =>
        i % 2
          ? await t.seed.sendMessage(alice, convoId, { ciphertext })
          : await t.call(alice, NSID.getMessages, { params: { convoId } }),
      )
    })
    for (const { result, ms } of await Promise.all(flood)) {
      expect(result.status).toBe(503)
      expect(result.body).toEqual({ error: 'ServiceUnavailable', message: expect.any(String) })
      expect(ms).toBeLessThan(BOUND_MS)
    }

    proxy.thaw()
    const recovered = await retryUntilAnswered(() => t.seed.sendMessage(alice, convoId), 5_000)
    expect(recovered.res.status).toBe(200)
    // Health has its own bound, shorter than a new connection takes on a loaded cluster: it recovers too.
    await expect.poll(async () => (await health()).status, { timeout: 5_000 }).toBe(200)
  }, 30_000)

  it.each([
    ['one-statement write (sendMessage) whose statement', () => keyedSendTimedOut()],
    ['transactional write (createConvo) whose COMMIT', () => keyedCreateTimedOutAtCommit()],
  ])(
    'keyed %s reached the database late: 503, and the retry replays it (stored once)',
    async (_kind, timedOut) => {
      const { stored, retry } = await timedOut()
      // As after SIGCONT: what was held is delivered, runs and commits, before the client's retry
      // (which would otherwise race it to the key, from another connection).
      proxy.thaw()
      await expect.poll(stored, { timeout: 5_000 }).toBe(1)
      const { res } = await retryUntilAnswered<unknown>(retry)
      expect(res.status).toBe(200)
      expect(res.headers.get('idempotent-replayed')).toBe('true')
      expect(await stored()).toBe(1)
    },
    30_000,
  )

  it('keyed one-statement write lost in a partition: 503, and the retry writes once', async () => {
    const { stored, retry } = await keyedSendTimedOut()
    // The statement never arrives: nothing was written, nothing holds the key.
    proxy.thaw({ lose: true })
    const { res } = await retryUntilAnswered(retry)
    expect(res.status).toBe(200)
    expect(res.headers.get('idempotent-replayed')).toBeNull()
    expect(await stored()).toBe(1)
  }, 30_000)

  it('keyed transactional write whose COMMIT was lost in a partition: 503, the orphaned transaction ends, and the retry writes once', async () => {
    const { stored, retry } = await keyedCreateTimedOutAtCommit()
    // The COMMIT never arrives and PostgreSQL never hears the connection
    // close: its transaction holds the key's claim until
    // idle_in_transaction_session_timeout ends it.
    proxy.thaw({ lose: true })
    const { res, seen } = await retryUntilAnswered(retry)
    expect(seen).toContain(409)
    expect(res.status).toBe(200)
    expect(res.headers.get('idempotent-replayed')).toBeNull()
    expect(await stored()).toBe(1)
  }, 30_000)

  it('statement_timeout is set on every connection: a statement running past it is cancelled (503), the connection kept', async () => {
    const { rows } = await sql<{ statement: string; idle: string }>`
      SELECT current_setting('statement_timeout') AS statement,
             current_setting('idle_in_transaction_session_timeout') AS idle`.execute(t.ctx.db)
    expect(rows[0]).toEqual({
      statement: `${STATEMENT_TIMEOUT_MS}ms`,
      idle: `${IDLE_IN_TRANSACTION_TIMEOUT_MS / 1000}s`,
    })

    // Cancelled by PostgreSQL, not abandoned by the client: no connection is discarded.
    let discarded = 0
    const discard = () => void discarded++
    t.database.pool.on('remove', discard)
    const slow = await timed(() => t.call(alice, NSID.getEpoch, { params: { convoId } })).finally(() =>
      t.database.pool.off('remove', discard),
    )
    expect(slow.result.status).toBe(503)
    expect(slow.ms).toBeLessThan(QUERY_TIMEOUT_MS)
    expect(discarded).toBe(0)
  })
})

describe('the pool', () => {
  it('answers 503 for a delegated write whose function cannot be made, for want of a connection to make it on', async () => {
    // With delegated writes (Citus), a write's function is made the first time it is sent, on a connection of its own.
    const database = createDatabase({
      url: proxy.url,
      poolSize: 1,
      delegatedWrites: true,
      timeouts: { queryMs: QUERY_TIMEOUT_MS },
    })
    try {
      // The pool's one connection opens before the freeze: the write reaches the step that makes its function.
      await sql`SELECT 1`.execute(database.db)
      proxy.freeze()
      const failure = await sendMessage(database.db, {
        convoId,
        sender: alice.did,
        groupId: randomGroupId(),
        epoch: 1,
        ciphertext: new Uint8Array([1]),
      }).catch((err: unknown) => err)
      // pg's own words for a client that could not connect in time (the pool's are others).
      expect(failure).toMatchObject({ message: 'timeout expired' })
      expect(toXrpcError(failure).statusCode).toBe(503)
    } finally {
      proxy.thaw()
      await database.close()
    }
  })

  it('closes a connection whose query timed out instead of handing it out again', async () => {
    // One connection, no statement timeout: reused, the next query would
    // queue behind the abandoned sleep.
    const database = createDatabase({ url: testDb.url, poolSize: 1, timeouts: { queryMs: QUERY_TIMEOUT_MS } })
    try {
      const started = performance.now()
      await expect(sql`SELECT pg_sleep(5)`.execute(database.db)).rejects.toThrow('Query read timeout')
      await sql`SELECT 1`.execute(database.db)
      // Well before the abandoned sleep would end: the second query did not queue behind it.
      expect(performance.now() - started).toBeLessThan(4_000)
    } finally {
      await database.close()
    }
  })
})
