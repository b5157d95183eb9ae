import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest'
import {
  createTestDatabase,
  encodeBase64,
  findPgBouncer,
  message,
  NO_PGBOUNCER,
  NSID,
  startPgBouncer,
  startTestApp,
  TestUser,
  welcomeOf,
  type RunningPgBouncer,
  type TestApp,
  type TestDatabase,
} from '../helpers/index.js'

// The write paths through PgBouncer in transaction mode, two server
// connections shared by every request: nothing may rely on a session
// (prepared statements are off, as PgBouncer before 1.21 needs; LISTEN goes
// direct). `npm run test:pgbouncer` runs the whole suite this way.
const binary = findPgBouncer()
let bouncer: RunningPgBouncer
let testDb: TestDatabase
let t: TestApp

describe('behind PgBouncer in transaction mode', () => {
  beforeAll(async () => {
    if (!binary) return
    testDb = await createTestDatabase()
    bouncer = await startPgBouncer(binary as string, inject('pgAdminUrl'), 2)
    const url = new URL(bouncer.url)
    url.pathname = new URL(testDb.directUrl).pathname
    t = await startTestApp({
      testDb: { url: url.href, directUrl: testDb.directUrl, drop: () => testDb.drop() },
      config: { DATABASE_PREPARED_STATEMENTS: 'false', DATABASE_POOL_SIZE: '8' },
    })
  })
  afterAll(async () => {
    await t?.close()
    await bouncer?.stop()
  })

  it('creates, adds members, sends with and without keys at once, and delivers the Welcome, with two server connections for all', async ({
    skip,
  }) => {
    // Skipped with its reason, which vitest prints beside the test's name.
    skip(!binary, NO_PGBOUNCER)
    const [alice, bob, carol] = await Promise.all([TestUser.create(), TestUser.create(), TestUser.create()])
    const convo = await t.seed.createConvo(alice, [bob])
    expect((await t.seed.addMembers(alice, convo.id, [carol])).status).toBe(200)
    const keyed = { idempotencyKey: randomUUID(), ciphertext: await message(alice, convo.id) }
    const sends = await Promise.all([
      ...Array.from({ length: 10 }, () => t.seed.sendMessage(alice, convo.id)),
      t.seed.sendMessage(alice, convo.id, keyed),
    ])
    expect(sends.map((r) => r.status)).toEqual(Array(11).fill(200))
    // Its retry: the same answer, no second message.
    const retried = await t.seed.sendMessage(alice, convo.id, keyed)
    expect(retried.body.messageId).toBe(sends[10]!.body.messageId)
    const page = await t.call(alice, NSID.getMessages, {
      params: { convoId: convo.id },
    })
    // The commit adding carol, then the 11 messages, numbered without gaps.
    expect(page.body.messages.map((m) => m.seq)).toEqual(Array.from({ length: 12 }, (_, i) => i + 1))

    // Carol's Welcome (the latest the conversation made).
    const fetched = await t.call(carol, NSID.getWelcome, { params: { convoId: convo.id } })
    expect(fetched.body.welcome).toBe(encodeBase64(welcomeOf(convo.id)))
    expect((await t.call(carol, NSID.confirmWelcome, { input: { convoId: convo.id, success: true } })).status).toBe(200)
  })
})
