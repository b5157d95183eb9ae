import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createDatabase } from '../../src/db/index.js'
import { execute, statement } from '../../src/db/statement.js'
import {
  bytesJson,
  createTestDatabase,
  keyPackage,
  message,
  NSID,
  startTestApp,
  SUITE,
  type TestApp,
  type TestDatabase,
  TestUser,
} from '../helpers/index.js'
import { requireMember } from '../../src/services/membership.js'

let testDb: TestDatabase
beforeAll(async () => {
  testDb = await createTestDatabase()
})
afterAll(async () => {
  await testDb?.drop()
})

/**
 * The prepared statements of the pool's one connection, straight to
 * PostgreSQL: behind a pooler in transaction mode "one connection" is not
 * one session.
 */
const preparedOn = async (pool: { query: (text: string) => Promise<{ rows: Array<{ name: string }> }> }) =>
  (await pool.query('SELECT name FROM pg_prepared_statements ORDER BY name')).rows.map((r) => r.name)

describe('prepared statements', () => {
  it.each([
    [true, ['require_member']],
    [false, []],
  ])('with DATABASE_PREPARED_STATEMENTS %s, a named statement is prepared on the connection: %j', async (on, names) => {
    const database = createDatabase({ url: testDb.directUrl, poolSize: 1, preparedStatements: on })
    try {
      await requireMember(database.db, 'nothing', 'did:plc:nobody').catch(() => {})
      await requireMember(database.db, 'nothing', 'did:plc:nobody').catch(() => {})
      expect(await preparedOn(database.pool)).toEqual(names)
    } finally {
      await database.close()
    }
  })

  it('one name is one text: a name reused for another statement is a bug, refused before it reaches PostgreSQL', () => {
    statement('test_one_text', () => sql`SELECT 1 AS n`)
    expect(() => statement('test_one_text', () => sql`SELECT 2 AS n`)).toThrow(/two different texts/)
    expect(() => statement('test_other_name', () => sql`SELECT 1 AS n`)).toThrow(/one text/)
  })

  it('is made once: a request binds its values by name, and a value left out is NULL', async () => {
    const database = createDatabase({ url: testDb.directUrl, poolSize: 1 })
    const echo = statement(
      'test_echo',
      (v: { a: number; b: string | null }) => sql<{ a: number; b: string | null }>`
      SELECT ${v.a}::int AS a, ${v.b}::text AS b, ${v.a}::int + 1 AS next`,
    )
    try {
      expect(echo.text).toMatch(/\$1::int AS a, \$2::text AS b, \$3::int \+ 1/)
      expect((await execute(database.db, echo, { a: 41, b: 'x' })).rows).toEqual([{ a: 41, b: 'x', next: 42 }])
      expect((await execute(database.db, echo, { a: 1 } as { a: number; b: null })).rows).toEqual([
        { a: 1, b: null, next: 2 },
      ])
      expect(await preparedOn(database.pool)).toEqual(['test_echo'])
    } finally {
      await database.close()
    }
  })
})

describe('the server with prepared statements off (PgBouncer before 1.21)', () => {
  let t: TestApp
  beforeAll(async () => {
    t = await startTestApp({ testDb, config: { DATABASE_PREPARED_STATEMENTS: 'false', DATABASE_POOL_SIZE: '1' } })
  })
  afterAll(async () => {
    await t?.close()
  })

  it('sends, replays, reads and hands out key packages, and prepares nothing', async () => {
    const [alice, bob] = [await TestUser.create(), await TestUser.create()]
    expect((await t.seed.publishKeyPackage(bob, await keyPackage(bob), { idempotencyKey: 'kp-1' })).status).toBe(200)
    const convo = await t.seed.createConvo(alice, [bob])
    const ciphertext = await message(alice, convo.id)
    const input = {
      convoId: convo.id,
      senderDid: alice.did,
      epoch: 1,
      ciphertext: bytesJson(ciphertext),
      idempotencyKey: 'send-1',
    }
    const first = await t.call(alice, NSID.sendMessage, { input })
    const replay = await t.call(alice, NSID.sendMessage, { input })
    expect([first.status, replay.status, replay.headers.get('idempotent-replayed')]).toEqual([200, 200, 'true'])
    expect(replay.body).toEqual(first.body)
    expect((await t.seed.sendMessage(bob, convo.id)).status).toBe(200)
    const page = await t.call(alice, NSID.getMessages, { params: { convoId: convo.id } })
    expect(page.body.messages).toHaveLength(2)
    expect((await t.call(alice, NSID.getEpoch, { params: { convoId: convo.id } })).body).toEqual({
      convoId: convo.id,
      currentEpoch: 1,
    })
    expect((await t.seed.publishKeyPackage(bob, await keyPackage(bob))).status).toBe(200)
    const claimed = await t.call(alice, NSID.getKeyPackages, {
      params: { dids: [bob.did], cipherSuite: SUITE },
    })
    expect(claimed.body.keyPackages).toHaveLength(1)
    expect(await preparedOn(t.database.pool)).toEqual([])
  })
})
