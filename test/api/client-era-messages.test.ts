import { randomUUID } from 'node:crypto'
import { sql } from 'kysely'
import { beforeAll, describe, expect, it } from 'vitest'
import {
  bytesJson,
  lockWaiters,
  message,
  messagesOf,
  NSID,
  openStream,
  pad,
  stateOf,
  TestUser,
  type TestApp,
} from '../helpers/index.js'
import { testAppForFile } from '../helpers/per-file.js'

// What the client-era clients (Catbird's iOS builds of Nov 2025 to Feb 2026) do with messages:
// they name a conversation by its MLS group id, pad every ciphertext, name each message (msgId),
// send no senderDid, and page by seq.
const t: TestApp = testAppForFile()
let alice: TestUser
let bob: TestUser
beforeAll(async () => {
  ;[alice, bob] = [await TestUser.create(), await TestUser.create()]
})

/** A client-era send: group id as convoId, padded, named; no senderDid. */
const clientEraInput = (
  groupId: string,
  epoch: number,
  padded: Uint8Array,
  msgId: string = randomUUID().toUpperCase(),
) => ({
  convoId: groupId,
  msgId,
  epoch,
  ciphertext: bytesJson(padded),
  paddedSize: padded.length,
})

const messageCount = async (convoId: string) =>
  Number(
    (await sql<{ n: string }>`SELECT count(*) AS n FROM message WHERE convo_id = ${convoId}`.execute(t.ctx.db)).rows[0]
      ?.n,
  )

describe('a conversation named by its MLS group id', () => {
  it('is the same conversation for every method, and answers name it as the caller did', async () => {
    const convo = await t.seed.createConvo(alice, [bob])
    const groupId = convo.groupId
    expect(groupId).not.toBe(convo.id)
    const epoch = await t.call(bob, NSID.getEpoch, { params: { convoId: groupId } })
    expect(epoch.body).toEqual({ convoId: groupId, currentEpoch: 1 })
    const padded = pad(await message(alice, convo.id))
    const sent = await t.call(alice, NSID.sendMessage, { input: clientEraInput(groupId, 1, padded) })
    expect(sent.status, JSON.stringify(sent.body)).toBe(200)
    const byGroup = await t.call(bob, NSID.getMessages, { params: { convoId: groupId } })
    const byId = await t.call(bob, NSID.getMessages, { params: { convoId: convo.id } })
    expect(byGroup.body.messages.map((m) => [m.convoId, m.id])).toEqual([[groupId, sent.body.messageId]])
    expect(byId.body.messages.map((m) => [m.convoId, m.id])).toEqual([[convo.id, sent.body.messageId]])
    const commits = await t.call(bob, NSID.getCommits, { params: { convoId: groupId.toUpperCase(), fromEpoch: 0 } })
    expect(commits.body.convoId).toBe(groupId.toUpperCase())
  })

  it('that names no conversation is 404, and a non-member still 403', async () => {
    const convo = await t.seed.createConvo(alice)
    const stranger = await TestUser.create()
    const nowhere = await t.call(alice, NSID.getEpoch, { params: { convoId: randomUUID().replaceAll('-', '') } })
    expect([nowhere.status, nowhere.body.error]).toEqual([404, 'ConvoNotFound'])
    const notMine = await t.call(stranger, NSID.getMessages, { params: { convoId: convo.groupId } })
    expect([notMine.status, notMine.body.error]).toEqual([403, 'NotMember'])
  })
})

describe('a padded ciphertext', () => {
  it('is read inside its padding and handed back as it came, to the byte', async () => {
    const convo = await t.seed.createConvo(alice, [bob])
    const mls = await message(alice, convo.id)
    const padded = pad(mls, 1024)
    const sent = await t.call(alice, NSID.sendMessage, { input: clientEraInput(convo.groupId, 1, padded) })
    expect(sent.body).toMatchObject({ seq: 1, epoch: 1 })
    const page = await t.call(bob, NSID.getMessages, { params: { convoId: convo.groupId } })
    expect(Buffer.from((page.body.messages[0]?.ciphertext as { $bytes: string }).$bytes, 'base64')).toEqual(
      Buffer.from(padded),
    )
    // Bob's MLS state reads what is inside.
    expect((await stateOf(bob, convo.id)).groupContext.epoch).toBe(1n)
  })

  it('is the MLSMessage inside to a reader that knows no padding: by the conversation id, and on the event stream', async () => {
    const convo = await t.seed.createConvo(alice, [bob])
    const stream = await openStream(t.url, bob, { convoId: convo.id })
    try {
      const mls = await message(alice, convo.id)
      await t.call(alice, NSID.sendMessage, { input: clientEraInput(convo.groupId, 1, pad(mls, 2048)) })
      // A seed-era message after it, unpadded, is handed out as it came to either reader.
      const plain = await message(bob, convo.id)
      await t.seed.sendMessage(bob, convo.id, { ciphertext: plain })
      const bytesOf = (m: { ciphertext: unknown }) => Buffer.from((m.ciphertext as { $bytes: string }).$bytes, 'base64')
      const byId = await t.call(bob, NSID.getMessages, { params: { convoId: convo.id } })
      expect(byId.body.messages.map(bytesOf)).toEqual([Buffer.from(mls), Buffer.from(plain)])
      const byGroup = await t.call(bob, NSID.getMessages, { params: { convoId: convo.groupId } })
      expect(byGroup.body.messages.map(bytesOf)).toEqual([Buffer.from(pad(mls, 2048)), Buffer.from(plain)])
      await stream.waitFor((events) => events.length === 2)
      expect(messagesOf(stream.events).map(bytesOf)).toEqual([Buffer.from(mls), Buffer.from(plain)])
    } finally {
      stream.close()
    }
  })

  it.each([
    [
      'paddedSize is not the length sent',
      (p: Uint8Array) => ({ ciphertext: p, paddedSize: p.length * 2 }),
      'InvalidRequest',
      /paddedSize is 2048/,
    ],
    [
      'a size that is no bucket',
      (p: Uint8Array) => ({ ciphertext: p.subarray(0, 1000), paddedSize: 1000 }),
      'InvalidRequest',
      /not a padding bucket/,
    ],
    [
      'bytes hidden in the padding',
      (p: Uint8Array) => ({ ciphertext: Object.assign(new Uint8Array(p), { [1023]: 7 }), paddedSize: 1024 }),
      'InvalidMessage',
      /padding after the message must be zeros/,
    ],
    [
      'a length prefix past the bucket',
      (p: Uint8Array) => {
        const bad = new Uint8Array(p)
        new DataView(bad.buffer).setUint32(0, 5000)
        return { ciphertext: bad, paddedSize: 1024 }
      },
      'InvalidMessage',
      /length prefix/,
    ],
  ])('is refused for %s, and nothing is stored', async (_case, make, error, why) => {
    const convo = await t.seed.createConvo(alice, [bob])
    const { ciphertext, paddedSize } = make(pad(await message(alice, convo.id), 1024))
    const res = await t.call(alice, NSID.sendMessage, {
      input: { convoId: convo.groupId, epoch: 1, ciphertext: bytesJson(ciphertext), paddedSize },
    })
    expect([res.status, res.body.error]).toEqual([400, error])
    expect(res.body.message).toMatch(why)
    expect(await messageCount(convo.id)).toBe(0)
  })

  it('declares the epoch of the message inside it', async () => {
    const convo = await t.seed.createConvo(alice, [bob])
    const res = await t.call(alice, NSID.sendMessage, {
      input: clientEraInput(convo.groupId, 2, pad(await message(alice, convo.id))),
    })
    expect([res.status, res.body.error]).toEqual([400, 'EpochMismatch'])
  })
})

describe('msgId', () => {
  it('names the message: the same again is the first answer, and nothing more is stored', async () => {
    const convo = await t.seed.createConvo(alice, [bob])
    const input = clientEraInput(convo.groupId, 1, pad(await message(alice, convo.id)))
    const first = await t.call(alice, NSID.sendMessage, { input })
    // A resend with a new idempotency key, as the client makes one per call.
    const again = await t.call(alice, NSID.sendMessage, { input: { ...input, idempotencyKey: randomUUID() } })
    expect(first.body.messageId).toBe(input.msgId)
    expect(again.body).toEqual(first.body)
    expect(await messageCount(convo.id)).toBe(1)
  })

  it('of another message is refused (409 MsgIdReused), from its sender or another member', async () => {
    const convo = await t.seed.createConvo(alice, [bob])
    const input = clientEraInput(convo.groupId, 1, pad(await message(alice, convo.id)))
    expect((await t.call(alice, NSID.sendMessage, { input })).status).toBe(200)
    const otherBytes = { ...input, ciphertext: bytesJson(pad(await message(alice, convo.id))) }
    const fromBob = { ...input, ciphertext: bytesJson(pad(await message(bob, convo.id))) }
    for (const [sender, sent] of [
      [alice, otherBytes],
      [bob, fromBob],
    ] as const) {
      const res = await t.call(sender, NSID.sendMessage, { input: sent })
      expect([res.status, res.body.error]).toEqual([409, 'MsgIdReused'])
    }
    expect(await messageCount(convo.id)).toBe(1)
  })

  it('sent at once, several times: one message, and every answer is its; the losers leave no gap', async () => {
    const convo = await t.seed.createConvo(alice, [bob])
    const input = clientEraInput(convo.groupId, 1, pad(await message(alice, convo.id)))
    // Hold the conversation's row lock, so that every send looks its msgId up before any stores it.
    const blocker = await t.ctx.pool.connect()
    let answers
    try {
      await blocker.query('BEGIN')
      await blocker.query('SELECT 1 FROM convo WHERE id = $1 FOR UPDATE', [convo.id])
      const racing = Array.from({ length: 4 }, () => t.call(alice, NSID.sendMessage, { input }))
      await expect.poll(() => lockWaiters(t.ctx.db), { timeout: 10_000 }).toBe(4)
      await blocker.query('COMMIT')
      answers = await Promise.all(racing)
    } finally {
      blocker.release(new Error('done'))
    }
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 200])
    expect(new Set(answers.map((a) => JSON.stringify(a.body))).size).toBe(1)
    // The losers' statements rolled back whole, their sequence numbers too.
    expect((await t.seed.sendMessage(alice, convo.id)).body.seq).toBe(2)
    expect(await messageCount(convo.id)).toBe(2)
  })

  it('is a ULID or a UUID, else 400', async () => {
    const convo = await t.seed.createConvo(alice)
    const ulid = '01HZZZZZZZZZZZZZZZZZZZZZZZ'
    const ok = await t.call(alice, NSID.sendMessage, {
      input: clientEraInput(convo.groupId, 0, pad(await message(alice, convo.id)), ulid),
    })
    expect([ok.status, ok.body.messageId]).toEqual([200, ulid])
    const bad = await t.call(alice, NSID.sendMessage, {
      input: clientEraInput(convo.groupId, 0, pad(await message(alice, convo.id)), 'not a message id'),
    })
    expect([bad.status, bad.body.message]).toEqual([400, 'msgId must be a ULID (26 characters) or a UUID (36)'])
  })
})

describe('getMessages for the client-era clients', () => {
  it('pages by sinceSeq, answers lastSeq, and types each message', async () => {
    const convo = await t.seed.createConvo(alice, [bob])
    for (let i = 0; i < 3; i++) await t.seed.sendMessage(alice, convo.id)
    expect((await t.seed.commitUpdate(bob, convo.id)).status).toBe(200)
    const first = await t.call(bob, NSID.getMessages, { params: { convoId: convo.groupId, limit: 2 } })
    expect(first.body.messages.map((m) => m.seq)).toEqual([1, 2])
    expect(first.body.lastSeq).toBe(2)
    const next = await t.call(bob, NSID.getMessages, {
      params: { convoId: convo.groupId, sinceSeq: first.body.lastSeq ?? 0 },
    })
    expect(next.body.messages.map((m) => [m.seq, m.messageType])).toEqual([
      [3, 'app'],
      [4, 'commit'],
    ])
    expect(next.body.gapInfo).toEqual({ hasGaps: false, missingSeqs: [], totalMessages: 2 })
  })

  it('says which seqs are missing when a message is gone', async () => {
    const convo = await t.seed.createConvo(alice, [bob])
    for (let i = 0; i < 4; i++) await t.seed.sendMessage(alice, convo.id)
    await sql`DELETE FROM message WHERE convo_id = ${convo.id} AND seq IN (1, 3)`.execute(t.ctx.db)
    const page = await t.call(bob, NSID.getMessages, { params: { convoId: convo.groupId } })
    expect(page.body.messages.map((m) => m.seq)).toEqual([2, 4])
    expect(page.body.gapInfo).toEqual({ hasGaps: true, missingSeqs: [1, 3], totalMessages: 2 })
  })

  it('takes a msgId as a seed-era cursor', async () => {
    const convo = await t.seed.createConvo(alice, [bob])
    const named = await t.call(alice, NSID.sendMessage, {
      input: clientEraInput(convo.groupId, 1, pad(await message(alice, convo.id))),
    })
    await t.seed.sendMessage(alice, convo.id)
    const after = await t.call(bob, NSID.getMessages, {
      params: { convoId: convo.id, sinceMessage: named.body.messageId },
    })
    expect(after.body.messages.map((m) => m.seq)).toEqual([2])
  })
})

describe('delivery: ephemeral', () => {
  it('is delivered as any message, with its seq, and marked as sent so', async () => {
    const convo = await t.seed.createConvo(alice, [bob])
    const res = await t.call(alice, NSID.sendMessage, {
      input: { ...clientEraInput(convo.groupId, 1, pad(await message(alice, convo.id))), delivery: 'ephemeral' },
    })
    expect(res.body.seq).toBe(1)
    const { rows } = await sql<{
      ephemeral: boolean
    }>`SELECT ephemeral FROM message WHERE convo_id = ${convo.id}`.execute(t.ctx.db)
    expect(rows).toEqual([{ ephemeral: true }])
  })
})
