import { Subscription } from '@atproto/xrpc-server'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  Arrivals,
  startTcpProxy,
  startTestApp,
  SUBSCRIBE,
  ticketOf,
  TestUser,
  type TcpProxy,
  type TestApp,
} from '../helpers/index.js'

// Two instances of the server on one database; the consumer reaches the first through a proxy that cuts.
let one: TestApp
let two: TestApp
let proxy: TcpProxy

beforeAll(async () => {
  one = await startTestApp()
  two = await startTestApp({ testDb: one.testDb })
  proxy = await startTcpProxy(one.url)
})
afterAll(async () => {
  await proxy?.close()
  await two?.close()
  await one?.close()
})

interface StreamEvent {
  $type: string
  cursor: string
  convoId?: string
  did?: string
  message?: { seq: number; convoId: string }
}

describe("subscribeConvoEvents through @atproto/xrpc-server's Subscription", () => {
  it('delivers every event of a busy conversation exactly once, in order, across cut connections, resuming by cursor', async () => {
    const [alice, bob, carol] = await Promise.all([TestUser.create(), TestUser.create(), TestUser.create()])
    const convo = await one.seed.createConvo(alice, [bob])
    const abort = new AbortController()
    // From the start of the log: what is sent before the first connection opens is replayed too.
    let cursor = '0'
    const subscription = new Subscription<StreamEvent>({
      service: proxy.url.replace(/^http/, 'ws').replace(/\/$/, ''),
      method: SUBSCRIBE,
      maxReconnectSeconds: 1,
      signal: abort.signal,
      // A ticket for every connection (each opens one), and where it stands.
      getParams: async () => ({
        convoId: convo.id,
        ticket: await ticketOf(one, bob, convo.id),
        cursor,
      }),
      validate: (body) => body as StreamEvent,
    })
    const arrivals = new Arrivals<StreamEvent>(
      (events) =>
        `${events.length} events (${proxy.accepted} connections): ${JSON.stringify(events.map((e) => e.message?.seq ?? e.$type))}`,
    )
    const received = arrivals.items
    const consuming = (async () => {
      for await (const event of subscription) {
        arrivals.push(event)
        cursor = event.cursor
      }
    })().catch(() => {})
    const until = (predicate: () => boolean) => arrivals.waitFor(predicate, 20_000)
    const messages = () => received.filter((e) => e.$type === `${SUBSCRIBE}#messageEvent`)

    // 240 messages from two senders through both instances, a member added halfway; cut six times on the way.
    const total = 240
    for (let batch = 0; batch < 6; batch++) {
      const sends = []
      for (let i = 0; i < total / 6; i++)
        sends.push((i % 2 ? one : two).seed.sendMessage(i % 3 ? alice : bob, convo.id))
      if (batch === 3) sends.push(one.seed.addMembers(alice, convo.id, [carol]))
      expect((await Promise.all(sends)).map((r) => r.status).every((s) => s === 200)).toBe(true)
      // Mid-stream: once some of this batch has arrived.
      await until(() => messages().length > (batch * total) / 6)
      proxy.cut()
    }
    await until(() => messages().length >= total + 1)
    abort.abort()
    await consuming

    // Every message once, in sequence (the addition's commit among them), and the addition once, after its commit.
    const seqs = messages().map((e) => e.message?.seq)
    expect(seqs).toEqual(Array.from({ length: total + 1 }, (_, i) => i + 1))
    const joined = received.filter((e) => e.$type === `${SUBSCRIBE}#membershipChangeEvent`)
    expect(
      joined
        .slice(0, 2)
        .map((e) => e.did)
        .sort(),
    ).toEqual([alice.did, bob.did].sort())
    expect(joined.slice(2)).toEqual([
      expect.objectContaining({ convoId: convo.groupId, did: carol.did, action: 'joined' }),
    ])
    const cursors = received.map((e) => Number(e.cursor))
    expect(new Set(cursors).size).toBe(cursors.length)
    expect([...cursors].sort((a, b) => a - b)).toEqual(cursors)
    expect(proxy.accepted).toBeGreaterThan(3)
  }, 120_000)
})
