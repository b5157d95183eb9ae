import { randomBytes, randomUUID } from 'node:crypto'
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  bytesJson,
  bytesToJson,
  countRows,
  message,
  NSID,
  startTestApp,
  type TestApp,
  TestUser,
} from '../helpers/index.js'

let t: TestApp
let alice: TestUser
let bob: TestUser
let eve: TestUser

beforeAll(async () => {
  t = await startTestApp({ config: { MAX_MESSAGE_BYTES: '2048' } })
  alice = await TestUser.create()
  bob = await TestUser.create()
  eve = await TestUser.create()
})
afterAll(async () => {
  await t?.close()
})

describe('sendMessage', () => {
  it('stores the MLS message byte for byte and returns its id and time', async () => {
    const convo = await t.seed.createConvo(alice, [bob])
    // Sent as unpadded base64 (as atproto encoders write it), returned padded.
    const ciphertext = await message(alice, convo.id, randomBytes(300))
    const sent = await t.seed.sendMessage(alice, convo.id, { ciphertext })
    expect(sent.status).toBe(200)
    expect(sent.body).toEqual({ messageId: expect.any(String), receivedAt: expect.any(String), seq: 1, epoch: 1 })
    const page = await t.call(bob, NSID.getMessages, { params: { convoId: convo.id } })
    expect(page.body.messages).toEqual([
      {
        id: sent.body.messageId,
        convoId: convo.id,
        sender: alice.did,
        ciphertext: bytesToJson(ciphertext),
        epoch: 1,
        seq: 1,
        createdAt: sent.body.receivedAt,
        messageType: 'app',
      },
    ])
  })

  it('takes a message without senderDid (as client-era clients send it) as the caller’s', async () => {
    const convo = await t.seed.createConvo(alice, [bob])
    const ciphertext = await message(bob, convo.id)
    const sent = await t.call(bob, NSID.sendMessage, {
      input: { convoId: convo.id, msgId: randomUUID().toUpperCase(), epoch: 1, ciphertext: bytesJson(ciphertext) },
    })
    expect(sent.body).toEqual({ messageId: expect.any(String), receivedAt: expect.any(String), seq: 1, epoch: 1 })
    const page = await t.call(alice, NSID.getMessages, { params: { convoId: convo.id } })
    expect(page.body.messages.map((m) => [m.id, m.sender])).toEqual([[sent.body.messageId, bob.did]])
  })

  it('refuses a senderDid that is not the caller (403), and changes nothing', async () => {
    const convo = await t.seed.createConvo(alice, [bob])
    const res = await t.call(alice, NSID.sendMessage, {
      input: { convoId: convo.id, senderDid: bob.did, epoch: 1, ciphertext: bytesJson(await message(bob, convo.id)) },
    })
    expect(res.status).toBe(403)
    const page = await t.call(alice, NSID.getMessages, { params: { convoId: convo.id } })
    expect(page.body.messages).toEqual([])
  })

  it('refuses non-members, unknown conversations, a stale epoch, empty and oversized ciphertext', async () => {
    const convo = await t.seed.createConvo(alice)
    const stale = await t.seed.staleMessage(alice, convo.id)
    const count = async () => countRows(t.ctx.db, 'message', sql`convo_id = ${convo.id}`)
    const stored = await count()
    // Eve replays a member's message as her own.
    expect((await t.seed.sendMessage(eve, convo.id, { ciphertext: await message(alice, convo.id) })).body.error).toBe(
      'NotMember',
    )
    const unknown = await t.seed.sendMessage(alice, 'nope', { ciphertext: await message(alice, convo.id) })
    expect(unknown.status).toBe(404)
    expect(unknown.body.error).toBe('ConvoNotFound')
    const staleSend = await t.seed.sendMessage(alice, convo.id, { ciphertext: stale })
    expect(staleSend.status).toBe(409)
    expect(staleSend.body.error).toBe('EpochMismatch')
    const big = await t.seed.sendMessage(alice, convo.id, {
      ciphertext: await message(alice, convo.id, randomBytes(2049)),
    })
    expect(big.status).toBe(400)
    expect(big.body.error).toBe('MessageTooLarge')
    expect((await t.seed.sendMessage(alice, convo.id, { ciphertext: new Uint8Array(0), epoch: 1 })).status).toBe(400)
    expect(await count()).toBe(stored)
  })

  it('numbers 50 concurrent sends 1..50 with no gap and no duplicate', async () => {
    const convo = await t.seed.createConvo(alice, [bob])
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, i) => t.seed.sendMessage(i % 2 ? alice : bob, convo.id)),
    )
    expect(results.every((r) => r.status === 200)).toBe(true)
    const { rows } = await sql<{
      seq: number
    }>`SELECT seq FROM message WHERE convo_id = ${convo.id} ORDER BY seq`.execute(t.ctx.db)
    expect(rows.map((r) => r.seq)).toEqual(Array.from({ length: 50 }, (_, i) => i + 1))
  })
})

describe('getMessages', () => {
  it('pages in sequence order with a bounded page size and a cursor until the end', async () => {
    const convo = await t.seed.createConvo(alice, [bob])
    const ids: string[] = []
    for (let i = 0; i < 7; i++) ids.push((await t.seed.sendMessage(alice, convo.id)).body.messageId)
    const seen: string[] = []
    let since: string | undefined
    let pages = 0
    for (;;) {
      const page = await t.call(bob, NSID.getMessages, {
        params: { convoId: convo.id, limit: 3, ...(since ? { sinceMessage: since } : {}) },
      })
      expect(page.status).toBe(200)
      pages++
      seen.push(...page.body.messages.map((m) => m.id))
      if (!page.body.cursor) break
      since = page.body.cursor
    }
    expect(seen).toEqual(ids)
    expect(pages).toBe(3)
    const after = await t.call(bob, NSID.getMessages, { params: { convoId: convo.id, sinceMessage: ids[6]! } })
    expect(after.body.messages).toEqual([])
  })

  it('refuses a cursor that is not a message of the conversation, and strangers', async () => {
    const convo = await t.seed.createConvo(alice)
    const other = await t.seed.createConvo(alice)
    const foreign = (await t.seed.sendMessage(alice, other.id)).body.messageId
    for (const sinceMessage of ['garbage', foreign, '00000000-0000-0000-0000-000000000000']) {
      const res = await t.call(alice, NSID.getMessages, { params: { convoId: convo.id, sinceMessage } })
      expect(res.status, sinceMessage).toBe(400)
      expect(res.body.error).toBe('InvalidCursor')
    }
    expect((await t.call(eve, NSID.getMessages, { params: { convoId: convo.id } })).status).toBe(403)
    expect((await t.call(alice, NSID.getMessages, { params: { convoId: convo.id, limit: 101 } })).status).toBe(400)
  })

  it('shows a re-added member only what was sent while it was a member', async () => {
    const convo = await t.seed.createConvo(alice, [bob])
    await t.seed.sendMessage(alice, convo.id)
    await t.call(bob, NSID.leaveConvo, { input: { convoId: convo.id } })
    await t.seed.sendMessage(alice, convo.id)
    expect((await t.seed.removeMember(alice, convo.id, bob)).status).toBe(200)
    const readd = await t.seed.addMembers(alice, convo.id, [bob])
    expect(readd.status).toBe(200)
    const later = (await t.seed.sendMessage(alice, convo.id)).body.messageId
    const page = await t.call(bob, NSID.getMessages, { params: { convoId: convo.id } })
    expect(page.body.messages.map((m) => m.id)).toEqual([later])
  })
})
