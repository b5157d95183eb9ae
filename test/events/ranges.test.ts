import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { EventHub } from '../../src/events/hub.js'
import { isMessage } from '../../src/services/eventLog.js'
import { sendMessage as storeMessage } from '../../src/services/messages.js'
import {
  epochOf,
  message,
  messagesOf,
  openStream,
  type SseStream,
  startTestApp,
  type TestApp,
  TestUser,
} from '../helpers/index.js'

/**
 * Event ids from several ranges, as a Citus cluster draws them (each node
 * from (group << 48) + 1): the identity is restarted at 2^48 + 1 midway, and
 * writes then alternate between the two ranges.
 */
const HIGH = 2 ** 48

// Two instances on one database, hearing of each other's writes by notification only.
let one: TestApp
let two: TestApp
const NO_POLL = { EVENT_POLL_INTERVAL_MS: '600000' }

beforeAll(async () => {
  one = await startTestApp({ config: NO_POLL })
  two = await startTestApp({ testDb: one.testDb, config: NO_POLL })
})
afterAll(async () => {
  await two?.close()
  await one?.close()
})

/** The next message id of each range, kept here: the one sequence is moved between them. */
const next = { low: 0, high: HIGH + 1 }

async function drawFrom(range: 'low' | 'high'): Promise<void> {
  if (next.low === 0) {
    const { rows } = await sql<{ max: number | null }>`SELECT max(event_id) AS max FROM message`.execute(one.ctx.db)
    next.low = Number(rows[0]?.max ?? 0) + 1
  }
  await sql`SELECT setval(pg_get_serial_sequence('message', 'event_id'), ${next[range]}, false)`.execute(one.ctx.db)
  next[range]++
}

/** Stores a message with its event id from `range`, unannounced (as by an instance that died after commit). */
async function storeIn(
  range: 'low' | 'high',
  sender: TestUser,
  convo: { id: string; groupId: string },
): Promise<string> {
  const ciphertext = await message(sender, convo.id)
  await drawFrom(range)
  const sent = await storeMessage(one.ctx.db, {
    convoId: convo.id,
    sender: sender.did,
    groupId: convo.groupId,
    epoch: epochOf(ciphertext),
    ciphertext,
  })
  return sent.id
}

/** Each conversation's messages arrive complete and in sequence, and none twice. */
function expectInOrderOnce(stream: SseStream): void {
  const messages = messagesOf(stream.events)
  expect(new Set(messages.map((m) => m.id)).size).toBe(messages.length)
  const byConvo = new Map<string, number[]>()
  for (const m of messages) byConvo.set(m.convoId, [...(byConvo.get(m.convoId) ?? []), m.seq])
  for (const seqs of byConvo.values()) {
    const first = seqs[0] as number
    expect(seqs).toEqual(seqs.map((_, i) => first + i))
  }
}

/** The event id of a stored message. */
async function eventIdOf(messageId: string): Promise<number> {
  const { rows } = await sql<{ event_id: string }>`SELECT event_id FROM message WHERE id = ${messageId}`.execute(
    one.ctx.db,
  )
  return Number(rows[0]?.event_id)
}

/** A stream of `did` on `hub`, and the ids of the messages it was given. */
function messagesTo(hub: EventHub, did: string): string[] {
  const delivered: string[] = []
  hub.subscribe({
    did,
    transport: 'sse',
    deliver: (events) => delivered.push(...events.filter(isMessage).map((m) => m.id)),
    close() {},
  })
  return delivered
}

const idsOf = (stream: SseStream) =>
  messagesOf(stream.events)
    .map((m) => m.id)
    .sort()

describe('event streams over event ids from several ranges', () => {
  it('deliver live and resume every message exactly once, each conversation in order', async () => {
    const alice = await TestUser.create()
    const bob = await TestUser.create()
    const shared = await one.seed.createConvo(alice, [bob])
    const own = await one.seed.createConvo(alice)
    const aliceLive = await openStream(one.url, alice)
    const bobLive = await openStream(two.url, bob)

    // Before the restart: one range, cursors are plain ids.
    for (let i = 0; i < 2; i++) expect((await one.seed.sendMessage(alice, shared.id)).status).toBe(200)
    await aliceLive.waitFor((e) => e.length === 2)
    const oldCursor = aliceLive.events[0]!.id!
    expect(oldCursor).toMatch(/^\d+$/)

    // Interleaved, and only then one announced, in the high range: the shared
    // conversation's seqs alternate between the ranges, so its event there
    // waits for the one before it in the low range, which is read for it.
    const stored: Array<{ convo: string; id: string }> = []
    for (let i = 0; i < 12; i++) {
      const convo = i % 3 === 2 ? own : shared
      stored.push({
        convo: convo.id,
        id: await storeIn(i % 2 ? 'high' : 'low', convo === shared && i % 4 === 1 ? bob : alice, convo),
      })
    }
    await drawFrom('high')
    expect((await one.seed.sendMessage(alice, shared.id)).status).toBe(200)
    const sharedCount = 2 + stored.filter((s) => s.convo === shared.id).length + 1
    await aliceLive.waitFor((e) => e.length === 2 + stored.length + 1)
    await bobLive.waitFor((e) => e.length === sharedCount)
    for (const stream of [aliceLive, bobLive]) expectInOrderOnce(stream)
    expect(idsOf(aliceLive)).toEqual(expect.arrayContaining(stored.map((s) => s.id)))
    expect(messagesOf(bobLive.events).every((m) => m.convoId === shared.id)).toBe(true)
    // Past the restart a cursor names both ranges' watermarks.
    const lastCursor = aliceLive.events.at(-1)!.id!
    expect(lastCursor.split(',').map(Number)).toEqual([next.low - 1, next.high - 1])

    // Resumed from the plain id of before the restart, and from the middle of the interleaving.
    const fromOld = await openStream(two.url, alice, { cursor: oldCursor })
    const middle = aliceLive.events[7]!.id!
    const fromMiddle = await openStream(one.url, alice, {}, { 'last-event-id': middle })
    await fromOld.waitFor((e) => e.length === aliceLive.events.length - 1)
    await fromMiddle.waitFor((e) => e.length === aliceLive.events.length - 8)
    expect(idsOf(fromOld)).toEqual(idsOf({ ...aliceLive, events: aliceLive.events.slice(1) }))
    expect(idsOf(fromMiddle)).toEqual(idsOf({ ...aliceLive, events: aliceLive.events.slice(8) }))

    // A third instance starts with both ranges' watermarks where they are: it repeats nothing.
    const three = await startTestApp({ testDb: one.testDb, config: NO_POLL })
    try {
      const late = await openStream(three.url, alice)
      for (let i = 0; i < 6; i++) await storeIn(i % 2 ? 'low' : 'high', alice, i % 2 ? own : shared)
      // Each conversation's writes stayed in one range: a write announced in each brings them.
      for (const [range, convo] of [
        ['high', shared],
        ['low', own],
      ] as const) {
        await drawFrom(range)
        expect((await two.seed.sendMessage(alice, convo.id)).status).toBe(200)
      }
      const total = 2 + stored.length + 1 + 8
      await Promise.all([
        aliceLive.waitFor((e) => e.length >= total),
        fromOld.waitFor((e) => e.length >= total - 1),
        fromMiddle.waitFor((e) => e.length >= total - 8),
        late.waitFor((e) => e.length >= 8),
      ])
      for (const stream of [aliceLive, fromOld, fromMiddle, late, bobLive]) {
        expectInOrderOnce(stream)
        stream.close()
      }
      expect(aliceLive.events).toHaveLength(total)
      expect(idsOf(late)).toEqual(idsOf({ ...aliceLive, events: aliceLive.events.slice(-8) }))
      expect(idsOf(fromOld)).toEqual(idsOf({ ...aliceLive, events: aliceLive.events.slice(1) }))
      expect(idsOf(fromMiddle)).toEqual(idsOf({ ...aliceLive, events: aliceLive.events.slice(8) }))
    } finally {
      await three.close()
    }
  }, 60_000)

  it('refuses a cursor, of one range or several, whose next events are no longer kept', async () => {
    const alice = await TestUser.create()
    const convo = await one.seed.createConvo(alice)
    for (let i = 0; i < 3; i++) await storeIn('low', alice, convo)
    const { rows } = await sql<{
      event_id: number
    }>`SELECT event_id FROM message WHERE event_id < ${HIGH}
       UNION ALL SELECT event_id FROM convo_event WHERE event_id < ${HIGH}
       ORDER BY event_id LIMIT 2`.execute(one.ctx.db)
    const [oldest, second] = rows.map((r) => Number(r.event_id)) as [number, number]
    // As a retention sweep would: the two oldest events of the log are gone.
    await sql`DELETE FROM message WHERE event_id <= ${second}`.execute(one.ctx.db)
    await sql`DELETE FROM convo_event WHERE event_id <= ${second}`.execute(one.ctx.db)
    for (const cursor of [String(oldest), `${oldest},${HIGH + 1}`]) {
      const refused = await openStream(one.url, alice, { cursor })
      expect([cursor, refused.status, refused.body?.error]).toEqual([cursor, 400, 'CursorTooOld'])
    }
    // Right after what is gone, nothing is missing.
    const resumed = await openStream(one.url, alice, { cursor: `${second},${HIGH + 1}` })
    expect(resumed.status).toBe(200)
    resumed.close()
  })

  it('passes an id of each range that never commits once it is older than the gap timeout, and delivers what follows once', async () => {
    const alice = await TestUser.create()
    const convo = await one.seed.createConvo(alice)
    const hub = new EventHub({
      db: one.ctx.db,
      listen: undefined,
      log: one.app.log,
      gapTimeoutMs: 300,
      pollIntervalMs: 50,
    })
    await hub.start()
    const delivered = messagesTo(hub, alice.did)
    try {
      // In each range an id is drawn and never stored (its transaction rolled back), and a message follows it.
      const sent: string[] = []
      for (const range of ['low', 'high'] as const) {
        await drawFrom(range)
        await sql`SELECT nextval(pg_get_serial_sequence('message', 'event_id'))`.execute(one.ctx.db)
        sent.push(await storeIn(range, alice, convo))
      }
      await vi.waitFor(() => expect(delivered).toEqual(sent), { timeout: 5_000, interval: 50 })
      // A message after them in each range: once they are delivered, anything delivered again would be too.
      const markers = [await storeIn('low', alice, convo), await storeIn('high', alice, convo)]
      await vi.waitFor(() => expect(delivered).toEqual(expect.arrayContaining(markers)), {
        timeout: 5_000,
        interval: 50,
      })
      expect(delivered).toEqual([...sent, ...markers])
    } finally {
      await hub.stop()
    }
  })

  it('reads only the ranges an announcement or a notification names, and the range an event waits on', async () => {
    const alice = await TestUser.create()
    const convo = await one.seed.createConvo(alice)
    // Both ranges hold events before the hub starts: it knows both.
    for (const range of ['low', 'high'] as const) await storeIn(range, alice, convo)
    const reads = { ids: 0, messages: 0 }
    const hub = new EventHub({
      db: one.ctx.db,
      listen: { connectionString: one.testDb.directUrl },
      log: one.app.log,
      // Only announcements and notifications bring a read.
      pollIntervalMs: 600_000,
      batchSize: 2,
      reads: { inc: ({ kind }) => reads[kind]++ },
    })
    await hub.start()
    try {
      // Catching up reads every range.
      await hub.caughtUp()
      expect(reads.ids).toBeGreaterThanOrEqual(2)

      // No stream open: an announcement brings a read of ids, of its range alone.
      const idle = reads.ids
      for (const n of [1, 2]) {
        hub.announce(await eventIdOf(await storeIn('high', alice, convo)))
        await vi.waitFor(() => expect(reads.ids).toBeGreaterThanOrEqual(idle + n), { interval: 10 })
        expect(reads.ids - idle).toBe(n)
      }

      // The last of those reads is done: the stream starts after what it read.
      await hub.caughtUp()
      const delivered = messagesTo(hub, alice.did)
      await hub.caughtUp()
      const arrived = (ids: string[]) =>
        vi.waitFor(() => expect(delivered).toEqual(expect.arrayContaining(ids)), { timeout: 5_000, interval: 10 })

      // A stream open: each write another instance announces is read at once, in its range alone.
      const live = reads.messages
      const sent: string[] = []
      for (const [range, via] of [
        ['high', one],
        ['low', two],
        ['high', two],
      ] as const) {
        await drawFrom(range)
        const send = await via.seed.sendMessage(alice, convo.id)
        expect(send.status).toBe(200)
        sent.push(send.body.messageId)
        await arrived(sent)
        expect([range, reads.messages - live]).toEqual([range, sent.length])
      }

      // An event announced in one range whose conversation's previous event, in
      // the other, was never announced: that range is read for it, and both
      // arrive in order.
      const unannounced = await storeIn('low', alice, convo)
      const announced = await storeIn('high', alice, convo)
      hub.announce(await eventIdOf(announced))
      await arrived([unannounced, announced])
      expect(delivered).toEqual([...sent, unannounced, announced])

      // More than a page behind one announcement: read page after page.
      const behind: string[] = []
      for (let i = 0; i < 5; i++) behind.push(await storeIn('high', alice, convo))
      hub.announce(await eventIdOf(behind.at(-1) as string))
      await arrived(behind)
      expect(delivered).toEqual([...sent, unannounced, announced, ...behind])
    } finally {
      await hub.stop()
    }
  })
})
