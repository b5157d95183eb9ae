import { sql } from 'kysely'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { message, messagesOf, NSID, openStream, startTestApp, type TestApp, TestUser } from '../helpers/index.js'
import { sendMessage as storeMessage } from '../../src/services/messages.js'

// Two instances of the server on one database.
let one: TestApp
let two: TestApp

// Polling so rare that events can only cross between instances by notification.
const NO_POLL = { EVENT_POLL_INTERVAL_MS: '600000' }

beforeAll(async () => {
  one = await startTestApp({ config: { ...NO_POLL, SSE_KEEPALIVE_SECONDS: '1', SSE_MAX_STREAMS_PER_CALLER: '3' } })
  two = await startTestApp({ testDb: one.testDb, config: { ...NO_POLL, SSE_KEEPALIVE_SECONDS: '1' } })
})
afterAll(async () => {
  await two?.close()
  await one?.close()
})

/** `url` with an application_name, which tells its sessions apart in pg_stat_activity. */
function withApplicationName(url: string, name: string): string {
  const named = new URL(url)
  named.searchParams.set('application_name', name)
  return named.href
}

/** The last statement of each session named `name`. */
async function sessionsOf(name: string): Promise<string[]> {
  const { rows } = await sql<{
    query: string
  }>`SELECT query FROM pg_stat_activity WHERE application_name = ${name}`.execute(one.ctx.db)
  return rows.map((r) => r.query)
}

/** A session of the test's own that LISTENs on `channels`, and the channels it heard, in order. */
async function listenTo(channels: string[]) {
  const client = new pg.Client(one.testDb.directUrl)
  await client.connect()
  const heard: string[] = []
  client.on('notification', (n) => heard.push(n.channel))
  for (const channel of channels) await client.query(`LISTEN ${channel}`)
  return { channels: heard, end: () => client.end() }
}

describe('streamConvoEvents', () => {
  it('delivers 200 messages sent through two instances, with and without idempotency keys, to subscribers on both, in order, exactly once', async () => {
    const alice = await TestUser.create()
    const bob = await TestUser.create()
    const convo = await one.seed.createConvo(alice, [bob])
    const streams = [await openStream(one.url, alice), await openStream(two.url, bob), await openStream(one.url, bob)]
    expect(streams.map((s) => s.status)).toEqual([200, 200, 200])

    const sends = []
    for (let i = 0; i < 200; i++) {
      // A keyed write commits with its stored response, after the handler, and is announced
      // then; the last ones are all keyed, so no unkeyed write announces them in passing.
      const keyed = i >= 150 ? { idempotencyKey: `stream-${i}` } : {}
      sends.push((i % 2 ? one : two).seed.sendMessage(i % 3 ? alice : bob, convo.id, keyed))
    }
    const results = await Promise.all(sends)
    expect(results.every((r) => r.status === 200)).toBe(true)

    for (const stream of streams) {
      await stream.waitFor((events) => events.length >= 200)
      const messages = messagesOf(stream.events)
      expect(messages.map((m) => m.seq)).toEqual(Array.from({ length: 200 }, (_, i) => i + 1))
      expect(new Set(messages.map((m) => m.id)).size).toBe(200)
      expect(stream.events[0]?.data).toMatchObject({
        $type: `${NSID.streamConvoEvents}#messageEvent`,
        cursor: stream.events[0]?.id,
        // The MLS message, as padded base64 (whole groups of four characters).
        message: {
          convoId: convo.id,
          ciphertext: {
            $bytes: expect.stringMatching(
              /^(?:[A-Za-z0-9+/]{4})+$|^(?:[A-Za-z0-9+/]{4})*[A-Za-z0-9+/]{2}(?:==|[A-Za-z0-9+/]=)$/,
            ),
          },
        },
      })
      stream.close()
    }
  }, 60_000)

  it('announces commits in sequence with the messages, whichever method carried them', async () => {
    const [alice, bob, carol] = await Promise.all([TestUser.create(), TestUser.create(), TestUser.create()])
    const convo = await one.seed.createConvo(alice, [bob])
    const stream = await openStream(two.url, bob, { convoId: convo.id })
    // Without polling, each write reaches the other instance only if it was announced.
    const writes = [
      () => one.seed.sendMessage(alice, convo.id),
      () => one.seed.commitUpdate(alice, convo.id),
      () => one.seed.addMembers(alice, convo.id, [carol], { idempotencyKey: `add-${carol.did}` }),
      () => one.seed.sendMessage(carol, convo.id),
      () =>
        one
          .call(carol, NSID.leaveConvo, { input: { convoId: convo.id } })
          .then(() => one.seed.removeMember(bob, convo.id, carol)),
    ]
    for (const [i, write] of writes.entries()) {
      expect((await write()).status).toBe(200)
      await stream.waitFor((events) => events.length === i + 1, 3_000)
    }
    expect(messagesOf(stream.events).map((m) => [m.seq, m.epoch, m.sender])).toEqual([
      [1, 1, alice.did],
      [2, 1, alice.did],
      [3, 2, alice.did],
      [4, 3, carol.did],
      [5, 3, bob.did],
    ])
    stream.close()
  })

  it('resumes from a cursor after a disconnect with nothing lost and nothing repeated', async () => {
    const alice = await TestUser.create()
    const convo = await one.seed.createConvo(alice)
    const first = await openStream(one.url, alice)
    for (let i = 0; i < 5; i++) await one.seed.sendMessage(alice, convo.id)
    await first.waitFor((e) => e.length === 5)
    first.close()
    const cursor = first.events[2]!.id!
    for (let i = 0; i < 5; i++) await two.seed.sendMessage(alice, convo.id)

    const resumed = await openStream(two.url, alice, { cursor })
    await resumed.waitFor((e) => e.length >= 7)
    for (let i = 0; i < 3; i++) await one.seed.sendMessage(alice, convo.id)
    await resumed.waitFor((e) => e.length >= 10)
    expect(messagesOf(resumed.events).map((m) => m.seq)).toEqual([4, 5, 6, 7, 8, 9, 10, 11, 12, 13])
    resumed.close()

    const viaHeader = await openStream(one.url, alice, {}, { 'last-event-id': resumed.events[8]!.id! })
    await viaHeader.waitFor((e) => e.length >= 1)
    expect(messagesOf(viaHeader.events).map((m) => m.seq)).toEqual([13])
    viaHeader.close()
  })

  it('shows non-members nothing, refuses a convo filter they are not in, and stops a member who leaves', async () => {
    const alice = await TestUser.create()
    const bob = await TestUser.create()
    const eve = await TestUser.create()
    const convo = await one.seed.createConvo(alice, [bob])
    const refused = await openStream(one.url, eve, { convoId: convo.id })
    expect(refused.status).toBe(403)
    expect(refused.body).toMatchObject({ error: 'NotMember' })
    const eveStream = await openStream(one.url, eve)
    const bobStream = await openStream(two.url, bob, { convoId: convo.id })
    await one.seed.sendMessage(alice, convo.id)
    await bobStream.waitFor((e) => e.length === 1)
    await one.call(bob, NSID.leaveConvo, { input: { convoId: convo.id } })
    await one.seed.sendMessage(alice, convo.id)
    const other = await one.seed.createConvo(eve)
    await one.seed.sendMessage(eve, other.id)
    // Eve's own message arriving proves the earlier ones were not held back.
    await eveStream.waitFor((e) => e.length === 1)
    expect(messagesOf(eveStream.events).map((m) => m.convoId)).toEqual([other.id])
    expect(bobStream.events).toHaveLength(1)
    eveStream.close()
    bobStream.close()
  })

  it('sends keep-alive comments, limits streams per caller, and refuses bad cursors', async () => {
    const alice = await TestUser.create()
    const streams = [
      await openStream(one.url, alice),
      await openStream(one.url, alice),
      await openStream(one.url, alice),
    ]
    const fourth = await openStream(one.url, alice)
    expect(fourth.status).toBe(429)
    await streams[0]!.waitFor(() => streams[0]!.comments.includes('keep-alive'), 5_000)
    const bad = await openStream(one.url, alice, { cursor: 'abc' })
    expect(bad.status).toBe(400)
    expect(bad.body).toMatchObject({ error: 'InvalidCursor' })
    // One position per range of event ids: two in one range name no position.
    for (const cursor of ['5,6', '1,', '99999999999999999']) {
      const refused = await openStream(one.url, alice, { cursor })
      expect([cursor, refused.status, refused.body?.error]).toEqual([cursor, 400, 'InvalidCursor'])
    }
    streams.forEach((s) => s.close())
  })

  it('delivers a write that was never announced (its instance died after commit) by polling', async () => {
    const polling = await startTestApp({ testDb: one.testDb, config: { EVENT_POLL_INTERVAL_MS: '100' } })
    try {
      const alice = await TestUser.create()
      const convo = await one.seed.createConvo(alice)
      const stream = await openStream(polling.url, alice)
      // The service call commits the message; no handler is there to announce it.
      const sent = await storeMessage(one.ctx.db, {
        convoId: convo.id,
        sender: alice.did,
        groupId: convo.groupId,
        epoch: 0,
        ciphertext: await message(alice, convo.id),
      })
      await stream.waitFor((e) => e.length >= 1)
      expect(messagesOf(stream.events).map((m) => m.id)).toEqual([sent.id])
      stream.close()
    } finally {
      await polling.close()
    }
  })

  it('listens on its own session connection when DATABASE_LISTEN_URL names one', async () => {
    // Straight to PostgreSQL, as behind a pooler in transaction mode (which cannot keep a LISTEN session).
    const listenUrl = withApplicationName(one.testDb.directUrl, 'catbird-listen-test')
    const listening = await startTestApp({ testDb: one.testDb, config: { ...NO_POLL, DATABASE_LISTEN_URL: listenUrl } })
    try {
      expect(await sessionsOf('catbird-listen-test')).toEqual(['LISTEN catbird_message; LISTEN catbird_typing'])
      const alice = await TestUser.create()
      const convo = await one.seed.createConvo(alice)
      const stream = await openStream(listening.url, alice)
      // Without polling, only a notification on that connection brings it.
      const sent = await one.seed.sendMessage(alice, convo.id)
      await stream.waitFor((e) => e.length === 1, 3_000)
      expect(messagesOf(stream.events).map((m) => m.id)).toEqual([sent.body.messageId])
      stream.close()
    } finally {
      await listening.close()
    }
  })

  it('polls only, with no LISTEN and no NOTIFY, when EVENT_LISTEN is off', async () => {
    const polling = await startTestApp({
      // Its own sessions, to look into: behind a pooler in transaction mode sessions are shared.
      testDb: { ...one.testDb, url: withApplicationName(one.testDb.directUrl, 'catbird-poll-only') },
      config: { EVENT_LISTEN: 'false', EVENT_POLL_INTERVAL_MS: '100' },
    })
    try {
      const alice = await TestUser.create()
      const convo = await one.seed.createConvo(alice)
      const here = await openStream(polling.url, alice)
      const elsewhere = await openStream(two.url, alice)
      // Another instance's write, found by polling; this instance's own, at once, and told to no one.
      const fromOne = await one.seed.sendMessage(alice, convo.id)
      await here.waitFor((e) => e.length === 1)
      await elsewhere.waitFor((e) => e.length === 1)
      // What is notified from now on: the other instances' notifications are out.
      await one.ctx.events.flush()
      const notified = await listenTo(['catbird_message', 'catbird_test_marker'])
      try {
        const fromPolling = await polling.seed.sendMessage(alice, convo.id)
        await here.waitFor((e) => e.length === 2)
        expect(messagesOf(here.events).map((m) => m.id)).toEqual([fromOne.body.messageId, fromPolling.body.messageId])
        // Anything the instance would notify is sent once flush() is done: a marker sent after it arrives after it.
        await polling.ctx.events.flush()
        await sql`SELECT pg_notify('catbird_test_marker', '')`.execute(one.ctx.db)
        await vi.waitFor(() => expect(notified.channels).toContain('catbird_test_marker'))
        expect(notified.channels).toEqual(['catbird_test_marker'])
      } finally {
        await notified.end()
      }
      // Nothing told the other instance, which does not poll.
      expect(messagesOf(elsewhere.events).map((m) => m.id)).toEqual([fromOne.body.messageId])
      const sessions = await sessionsOf('catbird-poll-only')
      expect(sessions.length).toBeGreaterThan(0)
      expect(sessions.filter((query) => /^(LISTEN|SELECT pg_notify)/.test(query))).toEqual([])
      here.close()
      elsewhere.close()
    } finally {
      await polling.close()
    }
  })

  it('reads new events, ids only, now and then while no stream is open, and a stream opened then starts after them', async () => {
    const quiet = await startTestApp({ testDb: one.testDb, config: NO_POLL })
    const reads = async (kind: 'messages' | 'ids') =>
      (await quiet.ctx.metrics.eventHubReads.get()).values.find((v) => v.labels.kind === kind)?.value ?? 0
    try {
      const alice = await TestUser.create()
      const convo = await quiet.seed.createConvo(alice)
      for (let i = 0; i < 30; i++) expect((await quiet.seed.sendMessage(alice, convo.id)).status).toBe(200)
      // The writes share reads, not one each, and no message is read back for nobody.
      expect(await reads('ids')).toBeLessThan(30)
      expect(await reads('messages')).toBe(0)

      const stream = await openStream(quiet.url, alice)
      const next = await quiet.seed.sendMessage(alice, convo.id)
      // Delivered in order: once the marker is there, anything older would be too.
      const marker = await quiet.seed.sendMessage(alice, convo.id)
      await stream.waitFor((e) => messagesOf(e).some((m) => m.id === marker.body.messageId))
      expect(messagesOf(stream.events).map((m) => m.id)).toEqual([next.body.messageId, marker.body.messageId])
      expect(await reads('messages')).toBeGreaterThan(0)
      stream.close()
    } finally {
      await quiet.close()
    }
  })

  it('ends open streams when the server closes, without delaying shutdown', async () => {
    const extra = await startTestApp({ testDb: one.testDb })
    const alice = await TestUser.create()
    const stream = await openStream(extra.url, alice)
    expect(stream.status).toBe(200)
    await stream.waitFor(() => stream.comments.includes('stream open'))
    // The test never aborts the stream: only the server can end it, and
    // close() must not wait for the client to hang up.
    const closing = extra.close()
    const outcome = await Promise.race([
      Promise.all([stream.closed, closing]).then(() => 'stream ended, server closed'),
      new Promise((resolve) => setTimeout(resolve, 5_000, 'still open after 5 s')),
    ])
    expect(outcome).toBe('stream ended, server closed')
  }, 15_000)
})
