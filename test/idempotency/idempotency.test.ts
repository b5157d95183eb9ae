import { randomUUID } from 'node:crypto'
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { convoIdOf } from '../../src/services/membership.js'
import {
  addMembersInput,
  bytesJson,
  captureLogs,
  countRows,
  encodeBase64,
  epochOf,
  groupInfoOf,
  holdKey,
  type InputOf,
  joinExternally,
  keyPackage,
  lockWaiters,
  message,
  NSID,
  randomGroupId,
  startTestApp,
  stateOf,
  SUITE,
  type TestApp,
  TestUser,
  withSlowClaims,
} from '../helpers/index.js'
import { startIdempotencyCleanup } from '../../src/workers/index.js'
import { requestFingerprint } from '../../src/xrpc/idempotency-key.js'

const logs = captureLogs()

let t: TestApp
let alice: TestUser
let bob: TestUser

beforeAll(async () => {
  t = await startTestApp({
    config: { IDEMPOTENCY_WAIT_MS: '5000' },
    logger: logs.logger,
  })
  alice = await TestUser.create()
  bob = await TestUser.create()
})
afterAll(async () => {
  await t?.close()
})

const countMessages = async (convoId: string) => countRows(t.ctx.db, 'message', sql`convo_id = ${convoId}`)
const countKeys = async () => countRows(t.ctx.db, 'idempotency_key')

/** A new input of each keyed write in `convoId`, with real MLS bytes. */
const writes: {
  [M in 'sendMessage' | 'createConvo' | 'addMembers' | 'publishKeyPackage' | 'processExternalCommit']: (
    convoId: string,
  ) => Promise<InputOf<(typeof NSID)[M]>>
} = {
  sendMessage: async (convoId) => {
    const ciphertext = await message(alice, convoId)
    return { convoId, senderDid: alice.did, epoch: epochOf(ciphertext), ciphertext: bytesJson(ciphertext) }
  },
  createConvo: async () => ({ groupId: randomGroupId(), cipherSuite: SUITE }),
  addMembers: async (convoId) => {
    const newMember = await TestUser.create()
    return addMembersInput(convoId, [newMember], await t.seed.prepareCommit(alice, convoId, { add: [newMember] }))
  },
  publishKeyPackage: async () => ({ keyPackage: encodeBase64(await keyPackage(alice)), cipherSuite: SUITE }),
  // Alice replaces her own leaf, as a device that lost its state does.
  processExternalCommit: async (convoId) => {
    const made = await joinExternally(alice, await groupInfoOf(await stateOf(alice, convoId)))
    return { convoId, externalCommit: encodeBase64(made.commit) }
  },
}

describe('idempotent writes', () => {
  it.each(['sendMessage', 'createConvo', 'addMembers', 'publishKeyPackage', 'processExternalCommit'] as const)(
    '%s: a retry with the same key replays the first response and creates nothing',
    async (name) => {
      // With bob: ts-mls cannot replace the only leaf of a group of one by external commit.
      const convo = await t.seed.createConvo(alice, name === 'processExternalCommit' ? [bob] : [])
      const input = await writes[name]!(convo.id)
      const key = randomUUID()
      const first = await t.call(alice, NSID[name], { input: { ...input, idempotencyKey: key } })
      expect(first.status).toBe(200)
      expect(first.headers.get('idempotent-replayed')).toBeNull()
      const rowsBefore = await countKeys()
      const retry = await t.call(alice, NSID[name], { input: { ...input, idempotencyKey: key } })
      expect(retry.status).toBe(200)
      expect(retry.body).toEqual(first.body)
      expect(retry.headers.get('idempotent-replayed')).toBe('true')
      expect(await countKeys()).toBe(rowsBefore)
      // The same key with a different request is refused and changes nothing (for createConvo, one
      // of the same group: a key's record lives with its conversation, see below).
      const other = name === 'createConvo' ? { ...input, metadata: { name: 'another' } } : await writes[name]!(convo.id)
      const changed = { ...other, idempotencyKey: key }
      const mismatch = await t.call(alice, NSID[name], { input: changed })
      expect(mismatch.status).toBe(422)
      expect(mismatch.body.error).toBe('IdempotencyKeyReused')
    },
  )

  it('sendMessage: the retry creates no second message', async () => {
    const convo = await t.seed.createConvo(alice)
    const key = randomUUID()
    const hi = await message(alice, convo.id)
    const a = await t.seed.sendMessage(alice, convo.id, { idempotencyKey: key, ciphertext: hi })
    const b = await t.seed.sendMessage(alice, convo.id, { idempotencyKey: key, ciphertext: hi })
    expect(b.body.messageId).toBe(a.body.messageId)
    expect(await countMessages(convo.id)).toBe(1)
    const c = await t.seed.sendMessage(alice, convo.id, {
      idempotencyKey: key,
      ciphertext: await message(alice, convo.id),
    })
    expect(c.status).toBe(422)
    expect(await countMessages(convo.id)).toBe(1)
  })

  it('50 concurrent sends with one key make one message and 50 identical ids', async () => {
    const convo = await t.seed.createConvo(alice)
    const key = randomUUID()
    const ciphertext = await message(alice, convo.id)
    const results = await Promise.all(
      Array.from({ length: 50 }, () => t.seed.sendMessage(alice, convo.id, { idempotencyKey: key, ciphertext })),
    )
    expect(results.map((r) => r.status)).toEqual(Array(50).fill(200))
    expect(new Set(results.map((r) => r.body.messageId)).size).toBe(1)
    expect(results.filter((r) => r.headers.get('idempotent-replayed') === 'true')).toHaveLength(49)
    expect(await countMessages(convo.id)).toBe(1)
  })

  it('scopes keys to the caller and the method: same key, independent results', async () => {
    const convo = await t.seed.createConvo(alice, [bob])
    const key = randomUUID()
    const byAlice = await t.seed.sendMessage(alice, convo.id, { idempotencyKey: key })
    const byBob = await t.seed.sendMessage(bob, convo.id, { idempotencyKey: key })
    expect(byBob.status).toBe(200)
    expect(byBob.headers.get('idempotent-replayed')).toBeNull()
    expect(byBob.body.messageId).not.toBe(byAlice.body.messageId)
    const otherMethod = await t.seed.publishKeyPackage(alice, await keyPackage(alice), { idempotencyKey: key })
    expect(otherMethod.status).toBe(200)
    expect(otherMethod.body).toHaveProperty('available')
    expect(await countMessages(convo.id)).toBe(2)
  })

  it('accepts the Idempotency-Key header (quoted or bare); the body wins when equal, 400 when they differ', async () => {
    const convo = await t.seed.createConvo(alice)
    const key = randomUUID()
    const x = await message(alice, convo.id)
    const viaHeader = await t.seed.sendMessage(alice, convo.id, {
      headers: { 'idempotency-key': `"${key}"` },
      ciphertext: x,
    })
    const viaBody = await t.seed.sendMessage(alice, convo.id, { idempotencyKey: key, ciphertext: x })
    expect(viaBody.headers.get('idempotent-replayed')).toBe('true')
    expect(viaBody.body.messageId).toBe(viaHeader.body.messageId)
    const both = await t.seed.sendMessage(alice, convo.id, {
      idempotencyKey: key,
      headers: { 'idempotency-key': key },
      ciphertext: x,
    })
    expect(both.body.messageId).toBe(viaHeader.body.messageId)
    const differ = await t.seed.sendMessage(alice, convo.id, {
      idempotencyKey: key,
      headers: { 'idempotency-key': 'other' },
    })
    expect(differ.status).toBe(400)
    expect(await countMessages(convo.id)).toBe(1)
  })

  it.each([
    ['empty', ''],
    ['too long', 'k'.repeat(256)],
    ['non-ASCII', 'clé'],
    ['control characters', 'a\tb'],
  ])('refuses a %s key with 400', async (_name, key) => {
    const convo = await t.seed.createConvo(alice)
    const res = await t.seed.sendMessage(alice, convo.id, { idempotencyKey: key })
    expect(res.status).toBe(400)
    expect(res.body.error).toBe('InvalidIdempotencyKey')
    expect(await countMessages(convo.id)).toBe(0)
  })

  it('a failed request leaves no record, so the retry runs again', async () => {
    const convo = await t.seed.createConvo(alice)
    const key = randomUUID()
    const stale = await t.seed.staleMessage(alice, convo.id)
    const failed = await t.seed.sendMessage(alice, convo.id, { idempotencyKey: key, ciphertext: stale })
    expect(failed.status).toBe(409)
    const retried = await t.seed.sendMessage(alice, convo.id, { idempotencyKey: key, ciphertext: stale })
    expect(retried.status).toBe(409)
    expect(retried.headers.get('idempotent-replayed')).toBeNull()
    expect(await countRows(t.ctx.db, 'idempotency_key', sql`caller_did = ${alice.did} AND status <> 200`)).toBe(0)
  })

  it('a request killed mid-transaction leaves no record and no write, so the retry writes once', async () => {
    const key = randomUUID()
    const groupId = randomGroupId()
    const input = { groupId, cipherSuite: SUITE }
    // The "first request" holds the key and writes its conversation; then its backend dies before COMMIT.
    const held = await holdKey(t.ctx, {
      caller: alice.did,
      nsid: NSID.createConvo,
      key,
      shardKey: convoIdOf(groupId),
      fingerprint: requestFingerprint(input),
    })
    await held.db
      .insertInto('convo')
      .values({ id: 'killed', group_id: groupId, creator_did: alice.did, cipher_suite: SUITE })
      .execute()
    await sql`SELECT pg_terminate_backend(pid) FROM pg_stat_activity
              WHERE datname = current_database() AND state = 'idle in transaction'`.execute(t.ctx.db)
    await held.abort().catch(() => {})
    const retry = await t.call(alice, NSID.createConvo, { input: { ...input, idempotencyKey: key } })
    expect(retry.status).toBe(200)
    expect(retry.headers.get('idempotent-replayed')).toBeNull()
    const { rows } = await sql<{ id: string }>`SELECT id FROM convo WHERE group_id = ${groupId}`.execute(t.ctx.db)
    expect(rows).toEqual([{ id: retry.body.id }])
  })

  it('answers 409 IdempotencyRequestInProgress with Retry-After when the holder does not finish in time', async () => {
    await withSlowClaims(t, { waitMs: 200, caller: alice }, async ({ slow, key, groupId, held }) => {
      const create = () =>
        slow.call(alice, NSID.createConvo, { input: { groupId, cipherSuite: SUITE, idempotencyKey: key } })
      const res = await create()
      expect(res.status).toBe(409)
      expect(res.body.error).toBe('IdempotencyRequestInProgress')
      expect(Number(res.headers.get('retry-after'))).toBeGreaterThanOrEqual(1)
      await held.abort()
      expect((await create()).status).toBe(200)
    })
  })

  it('requests without a key behave as before: every call creates', async () => {
    const convo = await t.seed.createConvo(alice)
    const ciphertext = await message(alice, convo.id)
    await t.seed.sendMessage(alice, convo.id, { ciphertext })
    await t.seed.sendMessage(alice, convo.id, { ciphertext })
    expect(await countMessages(convo.id)).toBe(2)
  })

  it('logs hits with a hashed key, never the raw key', async () => {
    const convo = await t.seed.createConvo(alice)
    const key = `secret-key-${randomUUID()}`
    await t.seed.sendMessage(alice, convo.id, { idempotencyKey: key, headers: { 'idempotency-key': key } })
    await t.seed.sendMessage(alice, convo.id, { idempotencyKey: key, headers: { 'idempotency-key': key } })
    const text = logs.text()
    expect(text).toMatch(/Idempotency cache HIT for key=[0-9a-f]{16} status=200/)
    expect(text).not.toContain(key)
  })
})

/** A call whose answer is read as the bytes that came, not parsed. */
async function rawCall(app: TestApp, user: TestUser, nsid: string, input: unknown) {
  const res = await fetch(`${app.url}/xrpc/${nsid}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${await user.token(nsid)}`, 'content-type': 'application/json' },
    body: JSON.stringify(input),
  })
  return { status: res.status, text: await res.text(), replayed: res.headers.get('idempotent-replayed') }
}

describe('answers and races of keyed writes', () => {
  it.each(['sendMessage', 'createConvo', 'addMembers', 'publishKeyPackage'] as const)(
    "%s: a replay is the first answer byte for byte (for a one-statement write, the answer built in SQL is the handler's)",
    async (name) => {
      const convo = await t.seed.createConvo(alice)
      const input = { ...(await writes[name]!(convo.id)), idempotencyKey: randomUUID() }
      const first = await rawCall(t, alice, NSID[name], input)
      expect(first.status).toBe(200)
      const replay = await rawCall(t, alice, NSID[name], input)
      expect(replay.replayed).toBe('true')
      expect(replay.text).toBe(first.text)
    },
  )

  it('sendMessage: the answer the statement stores is what the handler answers, at every millisecond digit', async () => {
    const convo = await t.seed.createConvo(alice)
    // Sends a few milliseconds apart land on timestamps of all kinds (trailing zeros, .999...).
    for (let i = 0; i < 40; i++) {
      const input = { ...(await writes.sendMessage!(convo.id)), idempotencyKey: randomUUID() }
      const first = await rawCall(t, alice, NSID.sendMessage, input)
      const { rows } = await sql<{ response: unknown }>`
        SELECT response FROM idempotency_key WHERE shard_key = ${convo.id} AND response->>'messageId' = ${JSON.parse(first.text).messageId}`.execute(
        t.ctx.db,
      )
      expect(JSON.stringify(rows[0]?.response)).toBe(first.text)
    }
  })

  it('a retry after the epoch moved on, or after the sender left, still replays the original answer', async () => {
    const convo = await t.seed.createConvo(alice, [bob])
    const byAlice = { ...(await writes.sendMessage!(convo.id)), idempotencyKey: randomUUID() }
    const first = await rawCall(t, alice, NSID.sendMessage, byAlice)
    expect(first.status).toBe(200)
    expect((await t.seed.commitUpdate(bob, convo.id)).status).toBe(200)
    // Sent now, the same message would be refused: its epoch is gone.
    const stale = await rawCall(t, alice, NSID.sendMessage, { ...byAlice, idempotencyKey: randomUUID() })
    expect(stale.status).toBe(409)
    const retry = await rawCall(t, alice, NSID.sendMessage, byAlice)
    expect(retry).toEqual({ status: 200, text: first.text, replayed: 'true' })

    const ciphertext = await message(bob, convo.id)
    const byBob = {
      convoId: convo.id,
      senderDid: bob.did,
      epoch: epochOf(ciphertext),
      ciphertext: bytesJson(ciphertext),
      idempotencyKey: randomUUID(),
    }
    const sent = await rawCall(t, bob, NSID.sendMessage, byBob)
    expect(sent.status).toBe(200)
    expect((await t.call(bob, NSID.leaveConvo, { input: { convoId: convo.id } })).status).toBe(200)
    expect(await rawCall(t, bob, NSID.sendMessage, byBob)).toEqual({ status: 200, text: sent.text, replayed: 'true' })
  })

  it('two instances race one key through the one-statement path: one message, the loser replays the winner, no gap', async () => {
    const other = await startTestApp({ testDb: t.testDb })
    try {
      const convo = await t.seed.createConvo(alice)
      const input = { ...(await writes.sendMessage!(convo.id)), idempotencyKey: randomUUID() }
      // Hold the conversation's row lock, so both requests pass the check and queue on it.
      const blocker = await t.ctx.pool.connect()
      try {
        await blocker.query('BEGIN')
        await blocker.query('SELECT 1 FROM convo WHERE id = $1 FOR UPDATE', [convo.id])
        const racing = [rawCall(t, alice, NSID.sendMessage, input), rawCall(other, alice, NSID.sendMessage, input)]
        await expect.poll(() => lockWaiters(t.ctx.db), { timeout: 10_000 }).toBe(2)
        await blocker.query('COMMIT')
        const answers = await Promise.all(racing)
        expect(answers.map((a) => a.status)).toEqual([200, 200])
        expect(answers.map((a) => a.replayed).sort()).toEqual(['true', null].sort())
        expect(answers[0]!.text).toBe(answers[1]!.text)
      } finally {
        // A failed check leaves the lock held: the client goes, not back to the pool.
        blocker.release(new Error('done'))
      }
      // The loser's statement rolled back whole: its sequence number too.
      expect((await t.seed.sendMessage(alice, convo.id)).status).toBe(200)
      const { rows } = await sql<{
        seq: number
      }>`SELECT seq FROM message WHERE convo_id = ${convo.id} ORDER BY seq`.execute(t.ctx.db)
      expect(rows.map((r) => r.seq)).toEqual([1, 2])
    } finally {
      await other.close()
    }
  })

  it('a key is scoped to its conversation: the same key and caller in another conversation is another write', async () => {
    const [one, two] = [await t.seed.createConvo(alice), await t.seed.createConvo(alice)]
    const key = randomUUID()
    const inOne = await rawCall(t, alice, NSID.sendMessage, {
      ...(await writes.sendMessage!(one.id)),
      idempotencyKey: key,
    })
    const inTwo = await rawCall(t, alice, NSID.sendMessage, {
      ...(await writes.sendMessage!(two.id)),
      idempotencyKey: key,
    })
    expect([inOne.status, inTwo.status, inTwo.replayed]).toEqual([200, 200, null])
    expect(await countMessages(two.id)).toBe(1)
  })
})

describe('expiry', () => {
  it('an expired record no longer replays; the worker deletes expired rows in batches', async () => {
    const convo = await t.seed.createConvo(alice)
    const key = randomUUID()
    const first = await t.seed.sendMessage(alice, convo.id, { idempotencyKey: key })
    await sql`UPDATE idempotency_key SET expires_at = now() - interval '1 second'`.execute(t.ctx.db)
    const second = await t.seed.sendMessage(alice, convo.id, { idempotencyKey: key })
    expect(second.status).toBe(200)
    expect(second.body.messageId).not.toBe(first.body.messageId)

    await sql`
      INSERT INTO idempotency_key (shard_key, scope_hash, caller_did, nsid, fingerprint, status, response, expires_at)
      SELECT 'c' || (i % 100), sha256(i::text::bytea), 'did:example:x', 'n', '\\x00', 200, '{}', now() - interval '1 hour'
      FROM generate_series(1, 2500) AS i`.execute(t.ctx.db)
    const count = async (expired: boolean) =>
      countRows(t.ctx.db, 'idempotency_key', sql`(expires_at <= now()) = ${expired}`)
    const [live, expired] = [await count(false), await count(true)]
    expect(expired).toBeGreaterThanOrEqual(2500)
    logs.clear()
    const worker = startIdempotencyCleanup(
      { ...t.ctx, config: { ...t.ctx.config, WORKER_BATCH_SIZE: 1000 } },
      t.app.log,
    )
    expect(logs.text()).toContain('Idempotency cache cleanup worker started')
    await worker.runOnce()
    await worker.stop()
    expect(await count(true)).toBe(0)
    expect(await count(false)).toBe(live)
    expect(logs.text()).toContain(`"deleted":${expired}`)
    expect(Number((await t.ctx.metrics.idempotencyCleanupDeleted.get()).values[0]?.value)).toBe(expired)
  })
})
