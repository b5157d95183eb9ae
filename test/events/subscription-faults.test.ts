import { randomBytes } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import WebSocket from 'ws'
import {
  connect,
  eventsOf,
  message,
  seqsOf,
  startTestApp,
  subscribe,
  subscriptionUrl,
  ticketOf,
  TestUser,
  type OpenSubscription,
  type TestApp,
} from '../helpers/index.js'

let one: TestApp
let two: TestApp

beforeAll(async () => {
  one = await startTestApp({ config: { WEBSOCKET_MAX_BUFFER_BYTES: String(256 * 1024) } })
  two = await startTestApp({ testDb: one.testDb, config: { WEBSOCKET_PING_SECONDS: '1' } })
})
afterAll(async () => {
  await two?.close()
  await one?.close()
})

/** The socket's error frame and close code, once it is closed. */
async function ending(sub: OpenSubscription) {
  const { code } = await sub.closed
  const frame = sub.frames.find((f) => f.kind === 'error')
  return { error: frame?.kind === 'error' ? frame.error : undefined, code }
}

describe('subscribeConvoEvents: what clients send', () => {
  it('ends a socket that sends text, garbage, an error frame, an unknown type or an oversized frame, each with its error, and no other', async () => {
    const alice = await TestUser.create()
    const convo = await one.seed.createConvo(alice)
    const witness = await subscribe(one, alice, { convoId: convo.id })
    const open = async () => subscribe(one, alice)

    const text = await open()
    text.ws.send('{"$type": "blue.catbird.mls.subscribeConvoEvents#typing"}')
    expect(await ending(text)).toEqual({ error: 'InvalidFrame', code: 1003 })

    const garbage = await open()
    garbage.ws.send(randomBytes(64))
    expect(await ending(garbage)).toEqual({ error: 'InvalidFrame', code: 1008 })

    const errorFrame = await open()
    // {op: -1} then {error: "X"}, in DAG-CBOR.
    errorFrame.ws.send(Buffer.from('a1626f7020a1656572726f726158', 'hex'))
    expect(await ending(errorFrame)).toEqual({ error: 'InvalidFrame', code: 1008 })

    const unknown = await open()
    unknown.sendFrame('#ack', { seq: 1 })
    expect(await ending(unknown)).toEqual({ error: 'InvalidFrame', code: 1008 })

    const badTyping = await open()
    badTyping.sendFrame('#typing', { convoId: convo.id, isTyping: 'yes' })
    expect(await ending(badTyping)).toEqual({ error: 'InvalidFrame', code: 1008 })

    const oversized = await open()
    oversized.sendFrame('#typing', { convoId: 'x'.repeat(20_000), isTyping: true })
    expect((await oversized.closed).code).toBe(1009)

    // The witness heard nothing of it, and goes on.
    await one.seed.sendMessage(alice, convo.id)
    await witness.waitFor(() => seqsOf(witness).length === 1)
    expect(witness.frames).toHaveLength(1)
    witness.close()
  })

  it('relays typing to the other members only (on every instance), at a bounded rate; a non-member typing is refused', async () => {
    const [alice, bob, eve] = await Promise.all([TestUser.create(), TestUser.create(), TestUser.create()])
    const convo = await one.seed.createConvo(alice, [bob])
    const alices = await subscribe(one, alice)
    const bobs = await subscribe(one, bob, { convoId: convo.id })
    const bobsElsewhere = await subscribe(two, bob)
    const eves = await subscribe(one, eve)

    alices.sendFrame('#typing', { convoId: convo.id, isTyping: true })
    await bobs.waitFor(() => eventsOf(bobs, '#typingEvent').length === 1)
    await bobsElsewhere.waitFor(() => eventsOf(bobsElsewhere, '#typingEvent').length === 1)
    expect(eventsOf(bobs, '#typingEvent')).toEqual([
      expect.objectContaining({ convoId: convo.groupId, did: alice.did, isTyping: true, cursor: expect.any(String) }),
    ])

    // A burst: what passes the rate goes through, in order, then a notice once the rate allows again.
    for (let i = 0; i < 10; i++) alices.sendFrame('#typing', { convoId: convo.id, isTyping: true })
    await bobs.waitFor(() => eventsOf(bobs, '#typingEvent').length >= 3)
    await new Promise((resolve) => setTimeout(resolve, 1_100))
    alices.sendFrame('#typing', { convoId: convo.id, isTyping: false })
    await bobs.waitFor(() => eventsOf(bobs, '#typingEvent').some((e) => e.isTyping === false))
    expect(eventsOf(bobs, '#typingEvent').length).toBeLessThanOrEqual(5)

    // Eve hears none of it (her own conversation's message is the marker), and cannot type there.
    const own = await one.seed.createConvo(eve)
    await one.seed.sendMessage(eve, own.id)
    await eves.waitFor(() => seqsOf(eves).length === 1)
    expect(eventsOf(eves, '#typingEvent')).toEqual([])
    expect(eventsOf(alices, '#typingEvent')).toEqual([])
    eves.sendFrame('#typing', { convoId: convo.id, isTyping: true })
    expect(await ending(eves)).toEqual({ error: 'NotMember', code: 1008 })
    ;[alices, bobs, bobsElsewhere].forEach((s) => s.close())
  })
})

describe('subscribeConvoEvents: slow and silent clients', () => {
  it('ends a client that stops reading with ConsumerTooSlow after what it was sent, never skipping; it resumes from its last cursor', async () => {
    const alice = await TestUser.create()
    const convo = await one.seed.createConvo(alice)
    const slow = await subscribe(one, alice, { convoId: convo.id })
    const other = await subscribe(two, alice, { convoId: convo.id })
    slow.ws.pause()
    const sent: number[] = []
    // Big messages fill the kernel's buffers, then the socket's queue.
    while (one.ctx.events.streamsOf(alice.did, 'websocket') > 0) {
      const res = await one.seed.sendMessage(alice, convo.id, {
        ciphertext: await message(alice, convo.id, randomBytes(200_000)),
      })
      sent.push(res.body.seq as number)
      if (sent.length > 400) throw new Error('the slow socket was never ended')
    }
    slow.ws.resume()
    expect(await ending(slow)).toEqual({ error: 'ConsumerTooSlow', code: 1008 })
    const received = seqsOf(slow)
    expect(received).toEqual(sent.slice(0, received.length))
    expect(slow.frames.at(-1)).toMatchObject({ kind: 'error', error: 'ConsumerTooSlow' })

    const last = eventsOf(slow, '#messageEvent').at(-1)?.cursor as string
    const resumed = await subscribe(one, alice, { convoId: convo.id, cursor: last })
    await resumed.waitFor(() => seqsOf(resumed).length === sent.length - received.length, 30_000)
    expect(seqsOf(resumed)).toEqual(sent.slice(received.length))
    // The other socket was not held up.
    await other.waitFor(() => seqsOf(other).length === sent.length, 30_000)
    ;[resumed, other].forEach((s) => s.close())
  }, 120_000)

  it('cuts a client that does not answer pings', async () => {
    const alice = await TestUser.create()
    const silent = await connect(two.url, { ticket: await ticketOf(two, alice) }, { autoPong: false })
    const { code } = await silent.closed
    expect(code).toBe(1006)
  })

  it('closes every socket with 1001 when the server shuts down', async () => {
    const alice = await TestUser.create()
    const three = await startTestApp({ testDb: one.testDb })
    const sub = await subscribe(three, alice)
    const opening = new WebSocket(subscriptionUrl(three.url, { ticket: await ticketOf(three, alice) }))
    const openingClosed = new Promise<number>((resolve) => opening.on('close', (code) => resolve(code)))
    opening.on('error', () => {})
    await three.close()
    expect((await sub.closed).code).toBe(1001)
    expect([1001, 1006]).toContain(await openingClosed)
    await vi.waitFor(() => expect(one.ctx.events.streamsOf(alice.did, 'websocket')).toBe(0))
  })
})
