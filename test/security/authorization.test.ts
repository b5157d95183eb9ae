import { randomUUID } from 'node:crypto'
import { Secp256k1Keypair } from '@atproto/crypto'
import { createServiceJwt } from '@atproto/xrpc-server'
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  bytesJson,
  countRows,
  message,
  NSID,
  SERVICE_DID,
  startTestApp,
  type TestApp,
  TestUser,
} from '../helpers/index.js'

let t: TestApp
let alice: TestUser
let bob: TestUser
let eve: TestUser

beforeAll(async () => {
  t = await startTestApp()
  alice = await TestUser.create()
  bob = await TestUser.create()
  eve = await TestUser.create()
})
afterAll(async () => {
  await t?.close()
})

/** Row counts of every table: a refused request must leave them all unchanged. */
async function snapshot() {
  const { rows } = await sql<{ t: string; n: number }>`
    SELECT 'convo' AS t, count(*)::int AS n FROM convo UNION ALL
    SELECT 'member', count(*)::int FROM member WHERE left_at IS NULL UNION ALL
    SELECT 'message', count(*)::int FROM message UNION ALL
    SELECT 'commit', count(*)::int FROM commit UNION ALL
    SELECT 'key_package', count(*)::int FROM key_package WHERE consumed_at IS NULL UNION ALL
    SELECT 'welcome_delivery', count(*)::int FROM welcome_delivery WHERE state = 'available' UNION ALL
    SELECT 'idempotency_key', count(*)::int FROM idempotency_key`.execute(t.ctx.db)
  return rows
}

describe('a non-member', () => {
  it('cannot read, send, add members, leave, read epochs or commits, or see the conversation', async () => {
    const convo = await t.seed.createConvo(alice, [bob])
    await t.seed.sendMessage(alice, convo.id)
    // Eve got hold of a member's message and sends it as her own.
    const replayed = await message(alice, convo.id)
    const before = await snapshot()
    const attempts = [
      t.call(eve, NSID.getMessages, { params: { convoId: convo.id } }),
      t.seed.sendMessage(eve, convo.id, { ciphertext: replayed }),
      t.call(eve, NSID.addMembers, { input: { convoId: convo.id, didList: [eve.did] } }),
      t.call(eve, NSID.leaveConvo, { input: { convoId: convo.id, targetDid: bob.did } }),
      t.call(eve, NSID.getEpoch, { params: { convoId: convo.id } }),
      t.call(eve, NSID.getCommits, { params: { convoId: convo.id, fromEpoch: 0 } }),
    ]
    for (const res of await Promise.all(attempts)) {
      expect(res.status).toBe(403)
      expect(res.body.error).toBe('NotMember')
    }
    const convos = await t.call(eve, NSID.getConvos)
    expect(convos.body.conversations).toEqual([])
    expect(await snapshot()).toEqual(before)
  })

  it("cannot fetch or confirm another member's Welcome", async () => {
    const convo = await t.seed.createConvo(alice, [bob])
    const before = await snapshot()
    const fetch = await t.call(eve, NSID.getWelcome, { params: { convoId: convo.id } })
    expect(fetch.status).toBe(404)
    const confirm = await t.call(eve, NSID.confirmWelcome, { input: { convoId: convo.id, success: true } })
    expect(confirm.status).toBe(404)
    expect(await snapshot()).toEqual(before)
    // Bob's Welcome is untouched: still fetchable as new.
    expect((await t.call(bob, NSID.getWelcome, { params: { convoId: convo.id } })).status).toBe(200)
  })

  it('a former member cannot read messages sent after it left', async () => {
    const convo = await t.seed.createConvo(alice, [bob])
    await t.call(bob, NSID.leaveConvo, { input: { convoId: convo.id } })
    await t.seed.sendMessage(alice, convo.id)
    const res = await t.call(bob, NSID.getMessages, { params: { convoId: convo.id } })
    expect(res.status).toBe(403)
    expect((await t.seed.sendMessage(bob, convo.id)).status).toBe(403)
  })
})

describe('impersonation', () => {
  it('a token of DID A cannot act as DID B: forged issuer is 401, a body naming B is 403', async () => {
    const convo = await t.seed.createConvo(bob)
    const ciphertext = bytesJson(await message(bob, convo.id))
    const before = await snapshot()
    // Eve signs a token claiming to be bob.
    const forged = await createServiceJwt({
      iss: bob.did,
      aud: SERVICE_DID,
      lxm: NSID.sendMessage,
      keypair: eve.keypair,
    })
    const asBob = await t.call(null, NSID.sendMessage, {
      token: forged,
      input: { convoId: convo.id, senderDid: bob.did, epoch: 0, ciphertext },
    })
    expect(asBob).toMatchObject({ status: 401, body: { error: 'BadJwtSignature' } })
    // Eve's own valid token with bob named as sender.
    const body = await t.call(eve, NSID.sendMessage, {
      input: { convoId: convo.id, senderDid: bob.did, epoch: 0, ciphertext },
    })
    expect(body).toMatchObject({
      status: 403,
      body: { error: 'Forbidden', message: expect.stringContaining('senderDid') },
    })
    expect(await snapshot()).toEqual(before)
  })

  it('a token for another user key type or a did:key with a wrong key fails verification', async () => {
    const other = await Secp256k1Keypair.create()
    const forged = await createServiceJwt({ iss: alice.did, aud: SERVICE_DID, lxm: NSID.getConvos, keypair: other })
    expect(await t.call(null, NSID.getConvos, { token: forged })).toMatchObject({
      status: 401,
      body: { error: 'BadJwtSignature' },
    })
  })
})

describe('idempotency records', () => {
  it("never replay another caller's response, even with the same key and body shape", async () => {
    const convo = await t.seed.createConvo(alice, [bob])
    const key = randomUUID()
    const ciphertext = bytesJson(await message(alice, convo.id))
    const a = await t.call(alice, NSID.sendMessage, {
      input: { convoId: convo.id, senderDid: alice.did, epoch: 1, ciphertext, idempotencyKey: key },
    })
    const b = await t.call(bob, NSID.sendMessage, {
      input: { convoId: convo.id, senderDid: bob.did, epoch: 1, ciphertext, idempotencyKey: key },
    })
    expect(b.headers.get('idempotent-replayed')).toBeNull()
    expect(b.body.messageId).not.toBe(a.body.messageId)
    // Eve, a non-member, with alice's key and alice's exact body: refused, not replayed.
    const e = await t.call(eve, NSID.sendMessage, {
      input: { convoId: convo.id, senderDid: alice.did, epoch: 1, ciphertext, idempotencyKey: key },
    })
    expect(e.status).toBe(403)
    expect(e.body).not.toHaveProperty('messageId')
  })
})

describe('SQL injection strings', () => {
  const payloads = [
    "'; DROP TABLE message; --",
    '" OR 1=1 --',
    "x') UNION SELECT ciphertext FROM message --",
    '\\x00\\\\',
    '$1 $2',
  ]

  it('are stored verbatim in free-text fields or refused, never executed', async () => {
    for (const text of payloads) {
      const prepared = await t.seed.prepareConvo(alice, [], { metadata: { name: text, description: text } })
      const created = await t.call(alice, NSID.createConvo, { input: prepared.input })
      expect(created.status).toBe(200)
      expect(created.body).toMatchObject({ metadata: { name: text, description: text } })
      prepared.created(created.body)
      const sent = await t.call(alice, NSID.sendMessage, {
        input: {
          convoId: created.body.id,
          senderDid: alice.did,
          epoch: 0,
          ciphertext: bytesJson(await message(alice, created.body.id)),
          embedType: text,
        },
      })
      expect(sent.status).toBe(200)
      // In identifiers and cursors they are simply not found / invalid.
      for (const [nsid, params] of [
        [NSID.getMessages, { convoId: text }],
        [NSID.getEpoch, { convoId: text }],
        [NSID.getConvos, { cursor: text }],
        [NSID.getMessages, { convoId: created.body.id, sinceMessage: text }],
      ] as const) {
        const res = await t.call(alice, nsid, { params })
        expect([400, 404], `${nsid} ${text}`).toContain(res.status)
      }
      const welcome = await t.call(alice, NSID.getWelcome, { params: { convoId: text } })
      expect(welcome.status).toBe(404)
      const kp = await t.call(alice, NSID.publishKeyPackage, { input: { keyPackage: text, cipherSuite: text } })
      expect(kp.status).toBe(400)
    }
    expect(await countRows(t.ctx.db, 'message', sql`embed_type = ANY(${payloads})`)).toBe(payloads.length)
  })
})
