import { execFile } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { isRecordTaken } from '../../src/idempotency/statement.js'
import {
  bytesJson,
  createTestDatabase,
  keyPackage,
  message,
  NSID,
  randomGroupId,
  startTestApp,
  SUITE,
  type TestApp,
  type TestDatabase,
  TestUser,
  withSlowClaims,
} from '../helpers/index.js'

// Delegated writes (src/db/delegated.ts) are for Citus, where each function is
// also distributed; on plain PostgreSQL the same functions run in place, so
// what they do is held here, and scripts/citus.sh explain shows where Citus runs them.
let testDb: TestDatabase
let t: TestApp
beforeAll(async () => {
  testDb = await createTestDatabase()
  // Straight to PostgreSQL, prepared (as on Citus): the test reads its one connection's session.
  t = await startTestApp({
    testDb: { ...testDb, url: testDb.directUrl },
    config: { DATABASE_DELEGATED_WRITES: 'true', DATABASE_PREPARED_STATEMENTS: 'true', DATABASE_POOL_SIZE: '1' },
  })
})
afterAll(async () => {
  await t?.close()
  await testDb?.drop()
})

const query = async <R>(text: string) => (await t.database.pool.query(text)).rows as R[]

describe('delegated writes (DATABASE_DELEGATED_WRITES)', () => {
  it('send, replay, commit, publish, claim, create and add run as functions made from their statements, with the same answers', async () => {
    const [alice, bob] = [await TestUser.create(), await TestUser.create()]
    const key = randomUUID()
    const bobsPackage = await keyPackage(bob)
    const published = await t.seed.publishKeyPackage(bob, bobsPackage, { idempotencyKey: key })
    const republished = await t.seed.publishKeyPackage(bob, bobsPackage, { idempotencyKey: key })
    expect([published.status, republished.status, republished.headers.get('idempotent-replayed')]).toEqual([
      200,
      200,
      'true',
    ])
    expect(republished.body).toEqual(published.body)
    // createConvo claims bob's key package (getKeyPackages) for its Welcome.
    const convo = await t.seed.createConvo(alice, [bob])

    // Sent at once, numbered without gaps in the order the conversation's row lock let them in.
    const ciphertexts = [] as Uint8Array[]
    for (let i = 0; i < 8; i++) ciphertexts.push(await message(alice, convo.id))
    const sent = await Promise.all(ciphertexts.map((ciphertext) => t.seed.sendMessage(alice, convo.id, { ciphertext })))
    expect(sent.map((r) => r.status)).toEqual(Array(8).fill(200))

    const input = {
      convoId: convo.id,
      senderDid: bob.did,
      epoch: 1,
      ciphertext: bytesJson(await message(bob, convo.id)),
      idempotencyKey: randomUUID(),
    }
    const first = await t.call(bob, NSID.sendMessage, { input })
    const replay = await t.call(bob, NSID.sendMessage, { input })
    expect([first.status, replay.status, replay.headers.get('idempotent-replayed')]).toEqual([200, 200, 'true'])
    expect(replay.body).toEqual(first.body)

    // A commit moves the epoch; a message of the old epoch is then refused, as without delegation.
    const stale = await message(alice, convo.id)
    expect((await t.seed.commitUpdate(alice, convo.id)).status).toBe(200)
    const refused = await t.seed.sendMessage(alice, convo.id, { ciphertext: stale })
    expect([refused.status, refused.body.error]).toEqual([409, 'EpochMismatch'])

    const rows = await query<{ seq: number; sender_did: string }>(
      `SELECT seq, sender_did FROM message WHERE convo_id = '${convo.id}' ORDER BY seq`,
    )
    // The eight sends, bob's once, the commit.
    expect(rows.map((r) => r.seq)).toEqual(Array.from({ length: 10 }, (_, i) => i + 1))
    expect(rows.filter((r) => r.sender_did === bob.did)).toHaveLength(1)

    expect((await t.seed.publishKeyPackage(bob, await keyPackage(bob))).status).toBe(200)
    const claimed = await t.call(alice, NSID.getKeyPackages, {
      params: { dids: [bob.did], cipherSuite: SUITE },
    })
    expect(claimed.body.keyPackages).toHaveLength(1)

    // What went to PostgreSQL: the functions, each a prepared statement named after it, never the statements they hold.
    const made = await query<{ proname: string }>(
      `SELECT proname FROM pg_proc WHERE proname LIKE 'catbird_delegated_%' ORDER BY proname`,
    )
    const prepared = await query<{ name: string }>('SELECT name FROM pg_prepared_statements ORDER BY name')
    const delegatedNames = prepared.map((p) => p.name).filter((name) => name.startsWith('catbird_delegated_'))
    // Every function made was called, and no delegated write went out as its own statement.
    expect(made.length).toBeGreaterThan(0)
    expect(delegatedNames).toEqual(made.map((p) => p.proname))
    expect(prepared.map((p) => p.name)).not.toEqual(
      expect.arrayContaining([expect.stringMatching(/^(store_|publish_|claim_key_package|create_convo|change_)/)]),
    )
  })
})

describe('the idempotency claim of a distributed database', () => {
  it('sends its SETs apart and still replays, and answers 409 while another request holds the key', async () => {
    const alice = await TestUser.create()
    const groupId = randomGroupId()
    const create = (key: string) =>
      t.call(alice, NSID.createConvo, { input: { groupId, cipherSuite: SUITE, idempotencyKey: key } })
    const key = randomUUID()
    const [first, replay] = [await create(key), await create(key)]
    expect([first.status, replay.status, replay.headers.get('idempotent-replayed')]).toEqual([200, 200, 'true'])
    expect(replay.body).toEqual(first.body)
    // Asked of the connections, so that Citus sends the claim's SET LOCALs on to the nodes, and a
    // statement on every shard runs on the connection the session keeps to each worker.
    const { rows } = await t.database.pool.query<{ propagate: string; pool: string }>(
      `SELECT current_setting('citus.propagate_set_commands') AS propagate,
              current_setting('citus.max_adaptive_executor_pool_size') AS pool`,
    )
    expect(rows[0]).toEqual({ propagate: 'local', pool: '1' })

    // A second server (this one has one connection), whose request waits for the key at most 200 ms.
    const config = { DATABASE_DELEGATED_WRITES: 'true' }
    await withSlowClaims(t, { waitMs: 200, caller: alice, config }, async ({ slow, key, groupId }) => {
      const busy = await slow.call(alice, NSID.createConvo, {
        input: { groupId, cipherSuite: SUITE, idempotencyKey: key },
      })
      expect([busy.status, busy.body.error]).toEqual([409, 'IdempotencyRequestInProgress'])
    })
  })
})

describe('servers that start at once', () => {
  const root = fileURLToPath(new URL('../..', import.meta.url))
  /** A server process of its own (its own memory of the functions it made), sending one message when told to. */
  const sendFromProcess = (url: string, at: number) =>
    promisify(execFile)(process.execPath, [
      '--import',
      'tsx',
      '--input-type=module',
      '-e',
      `
      const { createDatabase } = await import(${JSON.stringify(`${root}src/db/index.ts`)})
      const { sendMessage } = await import(${JSON.stringify(`${root}src/services/messages.ts`)})
      const database = createDatabase({ url: ${JSON.stringify(url)}, poolSize: 1, delegatedWrites: true })
      await new Promise((resolve) => setTimeout(resolve, ${at} - Date.now()))
      const sent = await sendMessage(database.db, { convoId: 'c1', sender: 'did:plc:a', groupId: 'ab', epoch: 0, ciphertext: new Uint8Array([1]) })
      console.log(sent.seq)
      await database.close()`,
    ])

  it('make each function once: one makes it, the others find it made or lose the race to make it, and all call it', async () => {
    const db = await createTestDatabase()
    try {
      const client = new pg.Client(db.directUrl)
      await client.connect()
      await client.query(`INSERT INTO convo (id, group_id, creator_did, cipher_suite) VALUES ('c1', 'ab', 'did:plc:a', 's');
        INSERT INTO member (convo_id, did) VALUES ('c1', 'did:plc:a')`)
      // All send at the same moment, once their processes are up.
      const at = Date.now() + 4_000
      // Straight to PostgreSQL: each process prepares its call, which a pooler before PgBouncer 1.21 cannot keep.
      const outputs = await Promise.all([1, 2, 3].map(() => sendFromProcess(db.directUrl, at)))
      expect(outputs.map((o) => Number(o.stdout.trim())).sort()).toEqual([1, 2, 3])
      const made = await client.query(`SELECT count(*)::int AS n FROM pg_proc WHERE proname LIKE 'catbird_delegated_%'`)
      await client.end()
      expect(made.rows[0].n).toBe(1)
    } finally {
      await db.drop()
    }
  }, 30_000)
})

describe('unique violations as Citus reports them', () => {
  /** An error as pg hands it over: on Citus, with the shard's index in the message and no constraint field. */
  const violation = (code: string, index: string, constraint?: string) =>
    Object.assign(new Error(`duplicate key value violates unique constraint "${index}"`), { code, constraint })

  it("a keyed write that lost its key's race is recognised from a shard's error too (the plugin then replays)", () => {
    expect(isRecordTaken(violation('23505', 'idempotency_key_pkey', 'idempotency_key_pkey'))).toBe(true)
    // Seen on Citus 13: from a delegated function (23505) and from rows pulled through the coordinator (XX000).
    expect(isRecordTaken(violation('23505', 'idempotency_key_pkey_102298'))).toBe(true)
    expect(isRecordTaken(violation('XX000', 'idempotency_key_pkey_102298'))).toBe(true)
    expect(isRecordTaken(violation('23505', 'key_package_owner_sha256_key_102041'))).toBe(false)
    expect(isRecordTaken(Object.assign(new Error('deadlock detected'), { code: '40P01' }))).toBe(false)
    expect(isRecordTaken(undefined)).toBe(false)
  })
})
