import { randomUUID } from 'node:crypto'
import { Writable } from 'node:stream'
import { sql } from 'kysely'
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startIdempotencyCleanup } from '../../src/workers/index.js'
import { startTestApp, type TestApp } from '../helpers/app.js'
import {
  b64,
  bytesJson,
  createConvo,
  epochOf,
  groupInfoOf,
  joinExternally,
  keyPackage,
  message,
  NS,
  prepareCommit,
  publishKeyPackage,
  randomGroupId,
  sendMessage,
  staleMessage,
  stateOf,
  SUITE,
} from '../helpers/mls.js'
import { TestUser } from '../helpers/users.js'

const logLines: string[] = []
const logSink = new Writable({
  write(chunk, _enc, done) {
    logLines.push(String(chunk))
    done()
  },
})

let t: TestApp
let alice: TestUser
let bob: TestUser

beforeAll(async () => {
  t = await startTestApp({
    config: { IDEMPOTENCY_WAIT_MS: '5000' },
    logger: pino({ level: 'info' }, logSink),
  })
  alice = await TestUser.create()
  bob = await TestUser.create()
})
afterAll(async () => {
  await t?.close()
})

const countMessages = async (convoId: string) =>
  (await sql<{ n: number }>`SELECT count(*)::int AS n FROM message WHERE convo_id = ${convoId}`.execute(t.ctx.db)).rows[0]!.n
const countKeys = async () =>
  (await sql<{ n: number }>`SELECT count(*)::int AS n FROM idempotency_key`.execute(t.ctx.db)).rows[0]!.n

/** A new input of each keyed write in `convoId`, with real MLS bytes. */
const writes: Record<string, (convoId: string) => Promise<Record<string, unknown>>> = {
  sendMessage: async (convoId) => {
    const ciphertext = await message(alice, convoId)
    return { convoId, senderDid: alice.did, epoch: epochOf(ciphertext), ciphertext: bytesJson(ciphertext) }
  },
  createConvo: async () => ({ groupId: randomGroupId(), cipherSuite: SUITE }),
  addMembers: async (convoId) => {
    const newMember = await TestUser.create()
    const prepared = await prepareCommit(t, alice, convoId, { add: [newMember] })
    return { convoId, didList: [newMember.did], commit: b64(prepared.commit), welcomeMessage: b64(prepared.welcome!), epoch: prepared.epoch }
  },
  publishKeyPackage: async () => ({ keyPackage: b64(await keyPackage(alice)), cipherSuite: SUITE }),
  // Alice replaces her own leaf, as a device that lost its state does.
  processExternalCommit: async (convoId) => {
    const made = await joinExternally(alice, await groupInfoOf(await stateOf(alice, convoId)))
    return { convoId, externalCommit: b64(made.commit) }
  },
}

describe('idempotent writes', () => {
  it.each(['sendMessage', 'createConvo', 'addMembers', 'publishKeyPackage', 'processExternalCommit'])(
    '%s: a retry with the same key replays the first response and creates nothing',
    async (name) => {
      // With bob: ts-mls cannot replace the only leaf of a group of one by external commit.
      const convo = await createConvo(t, alice, name === 'processExternalCommit' ? [bob] : [])
      const input = await writes[name]!(convo.id)
      const key = randomUUID()
      const first = await t.call(alice, `${NS}.${name}`, { input: { ...input, idempotencyKey: key } })
      expect(first.status).toBe(200)
      expect(first.headers.get('idempotent-replayed')).toBeNull()
      const rowsBefore = await countKeys()
      const retry = await t.call(alice, `${NS}.${name}`, { input: { ...input, idempotencyKey: key } })
      expect(retry.status).toBe(200)
      expect(retry.body).toEqual(first.body)
      expect(retry.headers.get('idempotent-replayed')).toBe('true')
      expect(await countKeys()).toBe(rowsBefore)
      // The same key with a different request is refused and changes nothing.
      const changed = { ...(await writes[name]!(convo.id)), idempotencyKey: key }
      const mismatch = await t.call(alice, `${NS}.${name}`, { input: changed })
      expect(mismatch.status).toBe(422)
      expect(mismatch.body.error).toBe('IdempotencyKeyReused')
    },
  )

  it('sendMessage: the retry creates no second message', async () => {
    const convo = await createConvo(t, alice)
    const key = randomUUID()
    const hi = await message(alice, convo.id)
    const a = await sendMessage(t, alice, convo.id, { idempotencyKey: key, ciphertext: hi })
    const b = await sendMessage(t, alice, convo.id, { idempotencyKey: key, ciphertext: hi })
    expect(b.body.messageId).toBe(a.body.messageId)
    expect(await countMessages(convo.id)).toBe(1)
    const c = await sendMessage(t, alice, convo.id, { idempotencyKey: key, ciphertext: await message(alice, convo.id) })
    expect(c.status).toBe(422)
    expect(await countMessages(convo.id)).toBe(1)
  })

  it('50 concurrent sends with one key make one message and 50 identical ids', async () => {
    const convo = await createConvo(t, alice)
    const key = randomUUID()
    const ciphertext = await message(alice, convo.id)
    const results = await Promise.all(
      Array.from({ length: 50 }, () => sendMessage(t, alice, convo.id, { idempotencyKey: key, ciphertext })),
    )
    expect(results.map((r) => r.status)).toEqual(Array(50).fill(200))
    expect(new Set(results.map((r) => r.body.messageId)).size).toBe(1)
    expect(results.filter((r) => r.headers.get('idempotent-replayed') === 'true')).toHaveLength(49)
    expect(await countMessages(convo.id)).toBe(1)
  })

  it('scopes keys to the caller and the method: same key, independent results', async () => {
    const convo = await createConvo(t, alice, [bob])
    const key = randomUUID()
    const byAlice = await sendMessage(t, alice, convo.id, { idempotencyKey: key })
    const byBob = await sendMessage(t, bob, convo.id, { idempotencyKey: key })
    expect(byBob.status).toBe(200)
    expect(byBob.headers.get('idempotent-replayed')).toBeNull()
    expect(byBob.body.messageId).not.toBe(byAlice.body.messageId)
    const otherMethod = await publishKeyPackage(t, alice, await keyPackage(alice), { idempotencyKey: key })
    expect(otherMethod.status).toBe(200)
    expect(otherMethod.body).toHaveProperty('available')
    expect(await countMessages(convo.id)).toBe(2)
  })

  it('accepts the Idempotency-Key header (quoted or bare); the body wins when equal, 400 when they differ', async () => {
    const convo = await createConvo(t, alice)
    const key = randomUUID()
    const x = await message(alice, convo.id)
    const viaHeader = await sendMessage(t, alice, convo.id, { headers: { 'idempotency-key': `"${key}"` }, ciphertext: x })
    const viaBody = await sendMessage(t, alice, convo.id, { idempotencyKey: key, ciphertext: x })
    expect(viaBody.headers.get('idempotent-replayed')).toBe('true')
    expect(viaBody.body.messageId).toBe(viaHeader.body.messageId)
    const both = await sendMessage(t, alice, convo.id, { idempotencyKey: key, headers: { 'idempotency-key': key }, ciphertext: x })
    expect(both.body.messageId).toBe(viaHeader.body.messageId)
    const differ = await sendMessage(t, alice, convo.id, { idempotencyKey: key, headers: { 'idempotency-key': 'other' } })
    expect(differ.status).toBe(400)
    expect(await countMessages(convo.id)).toBe(1)
  })

  it.each([
    ['empty', ''],
    ['too long', 'k'.repeat(256)],
    ['non-ASCII', 'clé'],
    ['control characters', 'a\tb'],
  ])('refuses a %s key with 400', async (_name, key) => {
    const convo = await createConvo(t, alice)
    const res = await sendMessage(t, alice, convo.id, { idempotencyKey: key })
    expect(res.status).toBe(400)
    expect(res.body.error).toBe('InvalidIdempotencyKey')
    expect(await countMessages(convo.id)).toBe(0)
  })

  it('a failed request leaves no record, so the retry runs again', async () => {
    const convo = await createConvo(t, alice)
    const key = randomUUID()
    const stale = await staleMessage(t, alice, convo.id)
    const failed = await sendMessage(t, alice, convo.id, { idempotencyKey: key, ciphertext: stale })
    expect(failed.status).toBe(409)
    const retried = await sendMessage(t, alice, convo.id, { idempotencyKey: key, ciphertext: stale })
    expect(retried.status).toBe(409)
    expect(retried.headers.get('idempotent-replayed')).toBeNull()
    const rows = await sql<{ n: number }>`SELECT count(*)::int AS n FROM idempotency_key WHERE caller_did = ${alice.did} AND status <> 200`.execute(t.ctx.db)
    expect(rows.rows[0]!.n).toBe(0)
  })

  it('a request killed mid-transaction leaves no record and no message', async () => {
    const convo = await createConvo(t, alice)
    const key = randomUUID()
    // Hold the key's lock from outside, then kill the server's backend that waits on it.
    const { claimIdempotencyKey } = await import('../../src/idempotency/store.js')
    const { idempotencyScope, requestFingerprint } = await import('../../src/idempotency/key.js')
    const z = await message(alice, convo.id)
    const input = { convoId: convo.id, senderDid: alice.did, epoch: 0, ciphertext: bytesJson(z) }
    const held = await claimIdempotencyKey(t.ctx.pool, {
      scope: idempotencyScope(alice.did, `${NS}.sendMessage`, key),
      fingerprint: requestFingerprint(input),
      callerDid: alice.did,
      nsid: `${NS}.sendMessage`,
      waitMs: 1000,
      ttlSeconds: 60,
    })
    expect(held.kind).toBe('claimed')
    if (held.kind !== 'claimed') return
    // The "first request" writes its message, then its process dies before commit.
    await held.claim.db.insertInto('message').values({
      id: randomUUID(), convo_id: convo.id, seq: 1, sender_did: alice.did, epoch: 0, ciphertext: z,
    }).execute()
    await sql`SELECT pg_terminate_backend(pid) FROM pg_stat_activity
              WHERE datname = current_database() AND state = 'idle in transaction'`.execute(t.ctx.db)
    await held.claim.abort().catch(() => {})
    const retry = await t.call(alice, `${NS}.sendMessage`, { input: { ...input, idempotencyKey: key } })
    expect(retry.status).toBe(200)
    expect(retry.headers.get('idempotent-replayed')).toBeNull()
    expect(await countMessages(convo.id)).toBe(1)
  })

  it('answers 409 IdempotencyRequestInProgress with Retry-After when the holder does not finish in time', async () => {
    const slow = await startTestApp({ testDb: t.testDb, config: { IDEMPOTENCY_WAIT_MS: '200' } })
    try {
      const convo = await createConvo(slow, alice)
      const key = randomUUID()
      const { claimIdempotencyKey } = await import('../../src/idempotency/store.js')
      const { idempotencyScope } = await import('../../src/idempotency/key.js')
      const held = await claimIdempotencyKey(slow.ctx.pool, {
        scope: idempotencyScope(alice.did, `${NS}.sendMessage`, key),
        fingerprint: Buffer.alloc(32),
        callerDid: alice.did,
        nsid: `${NS}.sendMessage`,
        waitMs: 1000,
        ttlSeconds: 60,
      })
      const res = await sendMessage(slow, alice, convo.id, { idempotencyKey: key })
      expect(res.status).toBe(409)
      expect(res.body.error).toBe('IdempotencyRequestInProgress')
      expect(Number(res.headers.get('retry-after'))).toBeGreaterThanOrEqual(1)
      if (held.kind === 'claimed') await held.claim.abort()
      expect((await sendMessage(slow, alice, convo.id, { idempotencyKey: key })).status).toBe(200)
    } finally {
      await slow.close()
    }
  })

  it('requests without a key behave as before: every call creates', async () => {
    const convo = await createConvo(t, alice)
    const ciphertext = await message(alice, convo.id)
    await sendMessage(t, alice, convo.id, { ciphertext })
    await sendMessage(t, alice, convo.id, { ciphertext })
    expect(await countMessages(convo.id)).toBe(2)
  })

  it('logs hits with a hashed key, never the raw key', async () => {
    const convo = await createConvo(t, alice)
    const key = `secret-key-${randomUUID()}`
    await sendMessage(t, alice, convo.id, { idempotencyKey: key, headers: { 'idempotency-key': key } })
    await sendMessage(t, alice, convo.id, { idempotencyKey: key, headers: { 'idempotency-key': key } })
    const text = logLines.join('')
    expect(text).toMatch(/Idempotency cache HIT for key=[0-9a-f]{16} status=200/)
    expect(text).not.toContain(key)
  })
})

describe('expiry', () => {
  it('an expired record no longer replays; the worker deletes expired rows in batches', async () => {
    const convo = await createConvo(t, alice)
    const key = randomUUID()
    const first = await sendMessage(t, alice, convo.id, { idempotencyKey: key })
    await sql`UPDATE idempotency_key SET expires_at = now() - interval '1 second'`.execute(t.ctx.db)
    const second = await sendMessage(t, alice, convo.id, { idempotencyKey: key })
    expect(second.status).toBe(200)
    expect(second.body.messageId).not.toBe(first.body.messageId)

    await sql`
      INSERT INTO idempotency_key (scope_hash, caller_did, nsid, fingerprint, status, response, expires_at)
      SELECT sha256(i::text::bytea), 'did:example:x', 'n', '\\x00', 200, '{}', now() - interval '1 hour'
      FROM generate_series(1, 2500) AS i`.execute(t.ctx.db)
    const count = async (expired: boolean) =>
      (await sql<{ n: number }>`SELECT count(*)::int AS n FROM idempotency_key
        WHERE (expires_at <= now()) = ${expired}`.execute(t.ctx.db)).rows[0]!.n
    const [live, expired] = [await count(false), await count(true)]
    expect(expired).toBeGreaterThanOrEqual(2500)
    logLines.length = 0
    const worker = startIdempotencyCleanup(
      { ...t.ctx, config: { ...t.ctx.config, WORKER_BATCH_SIZE: 1000 } },
      t.app.log,
    )
    expect(logLines.join('')).toContain('Idempotency cache cleanup worker started')
    await worker.runOnce()
    await worker.stop()
    expect(await count(true)).toBe(0)
    expect(await count(false)).toBe(live)
    expect(logLines.join('')).toContain(`"deleted":${expired}`)
    expect(Number((await t.ctx.metrics.idempotencyCleanupDeleted.get()).values[0]?.value)).toBe(expired)
  })
})
