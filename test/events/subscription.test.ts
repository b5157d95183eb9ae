import { createHash, randomBytes } from 'node:crypto'
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import WebSocket from 'ws'
import { takeDown } from '../../src/services/accounts.js'
import { startTicketSweep } from '../../src/workers/index.js'
import {
  assertOutputOf,
  connect,
  eventsOf,
  message,
  NSID,
  openStream,
  seqsOf,
  startTestApp,
  subscribe,
  SUBSCRIBE,
  ticketOf,
  TestDevice,
  TestUser,
  type OpenSubscription,
  type TestApp,
} from '../helpers/index.js'

// Two instances of the server on one database.
let one: TestApp
let two: TestApp

// Polling so rare that events can only cross between instances by notification.
const NO_POLL = { EVENT_POLL_INTERVAL_MS: '600000' }

beforeAll(async () => {
  one = await startTestApp({ config: { ...NO_POLL, WEBSOCKET_MAX_SOCKETS_PER_CALLER: '3' } })
  two = await startTestApp({ testDb: one.testDb, config: NO_POLL })
})
afterAll(async () => {
  await two?.close()
  await one?.close()
})

/** Whether a messageEvent carries these ciphertext bytes. */
const sameBytes = (event: Record<string, unknown>, ciphertext: Uint8Array) =>
  Buffer.from((event.message as { ciphertext: Uint8Array }).ciphertext).equals(Buffer.from(ciphertext))

const errorsOf = (sub: OpenSubscription) => sub.frames.flatMap((f) => (f.kind === 'error' ? [f.error] : []))

/** Waits for the socket to end with an error frame; answers the error's name, message and the close code. */
async function refusal(sub: OpenSubscription) {
  const { code } = await sub.closed
  const frame = sub.frames.find((f) => f.kind === 'error')
  return {
    error: frame?.kind === 'error' ? frame.error : undefined,
    message: frame?.kind === 'error' ? frame.message : '',
    code,
  }
}

describe('getSubscriptionTicket', () => {
  it('gives the caller a ticket valid for 30 seconds and the endpoint to connect to; NotMember for a conversation of others', async () => {
    const [alice, eve] = await Promise.all([TestUser.create(), TestUser.create()])
    const convo = await one.seed.createConvo(alice)
    const before = Date.now()
    const res = await one.call(alice, NSID.getSubscriptionTicket, { input: { convoId: convo.id } })
    expect(res.status).toBe(200)
    expect(res.body.endpoint).toBe(`ws://localhost:${one.ctx.config.PORT}/xrpc/${SUBSCRIBE}`)
    expect(res.body.ticket).toMatch(/^[A-Za-z0-9_-]{43}$/)
    const lifetime = Date.parse(res.body.expiresAt) - before
    expect(lifetime).toBeGreaterThan(25_000)
    expect(lifetime).toBeLessThanOrEqual(31_000)
    const refused = await one.call(eve, NSID.getSubscriptionTicket, { input: { convoId: convo.id } })
    expect([refused.status, refused.body.error]).toEqual([403, 'NotMember'])
    const unauthenticated = await one.call(null, NSID.getSubscriptionTicket, { input: {} })
    expect(unauthenticated.status).toBe(401)
  })

  it('answers WEBSOCKET_URL as the endpoint when set, and the host of a did:web service DID otherwise', async () => {
    const alice = await TestUser.create()
    const configured = await startTestApp({
      testDb: one.testDb,
      config: { WEBSOCKET_URL: 'wss://events.example.com/xrpc/blue.catbird.mls.subscribeConvoEvents' },
    })
    try {
      const res = await configured.call(alice, NSID.getSubscriptionTicket, { input: {} })
      expect(res.body.endpoint).toBe('wss://events.example.com/xrpc/blue.catbird.mls.subscribeConvoEvents')
    } finally {
      await configured.close()
    }
  })
})

describe('subscribeConvoEvents: tickets', () => {
  it('opens with a ticket made on another instance, once: a second use, an expired or unknown ticket are refused', async () => {
    const alice = await TestUser.create()
    const convo = await one.seed.createConvo(alice)
    const ticket = await ticketOf(one, alice)
    const sub = await connect(two.url, { ticket })
    await one.seed.sendMessage(alice, convo.id)
    await sub.waitFor(() => seqsOf(sub).length === 1)
    expect(errorsOf(sub)).toEqual([])

    const again = await connect(one.url, { ticket })
    expect(await refusal(again)).toMatchObject({ error: 'TicketAlreadyUsed', code: 1008 })

    const stale = await ticketOf(one, alice)
    await sql`UPDATE subscription_ticket SET expires_at = now() - interval '1 second' WHERE used_at IS NULL`.execute(
      one.ctx.db,
    )
    expect(await refusal(await connect(one.url, { ticket: stale }))).toMatchObject({
      error: 'ExpiredTicket',
      code: 1008,
    })
    expect(await refusal(await connect(one.url, { ticket: 'A'.repeat(43) }))).toMatchObject({
      error: 'InvalidTicket',
      code: 1008,
    })
    // A service-auth token is not a ticket.
    const token = await alice.token(NSID.getConvos)
    expect(await refusal(await connect(one.url, { ticket: token }))).toMatchObject({ error: 'InvalidTicket' })
    sub.close()
  })

  it('keeps a used or expired ticket for a while, so that a second use is told so, then the sweep deletes it', async () => {
    const alice = await TestUser.create()
    const [used, fresh] = [await ticketOf(one, alice), await ticketOf(one, alice)]
    const sub = await connect(one.url, { ticket: used })
    sub.close()
    const hashOf = (ticket: string) => createHash('sha256').update(ticket).digest('hex')
    // Expired long ago: past what the sweep keeps, yet still told apart until it runs.
    await sql`UPDATE subscription_ticket SET expires_at = now() - interval '1 hour' WHERE ticket_hash = ${hashOf(used)}`.execute(
      one.ctx.db,
    )
    expect(await refusal(await connect(one.url, { ticket: used }))).toMatchObject({ error: 'TicketAlreadyUsed' })
    const sweep = startTicketSweep(one.ctx, one.app.log)
    await sweep.runOnce()
    await sweep.stop()
    expect(await refusal(await connect(one.url, { ticket: used }))).toMatchObject({ error: 'InvalidTicket' })
    // A ticket still valid is not the sweep's.
    const kept = await connect(one.url, { ticket: fresh })
    await one.seed.createConvo(alice)
    await kept.waitFor(() => eventsOf(kept, '#membershipChangeEvent').length === 1)
    kept.close()
  })

  it('refuses a ticket in a header, a ticket for another conversation, and a ticket as a token for another method', async () => {
    const alice = await TestUser.create()
    const [convo, other] = [await one.seed.createConvo(alice), await one.seed.createConvo(alice)]
    const ticket = await ticketOf(one, alice, convo.id)
    const inHeader = await connect(one.url, {}, { headers: { authorization: `Bearer ${ticket}` } })
    const refused = await refusal(inHeader)
    expect(refused).toMatchObject({ error: 'AuthRequired', code: 1008 })
    expect(refused.message).toContain('query')
    expect(await refusal(await connect(one.url, {}))).toMatchObject({ error: 'AuthRequired' })

    const elsewhere = await refusal(await connect(one.url, { ticket, convoId: other.id }))
    expect(elsewhere).toMatchObject({ error: 'InvalidTicket', message: 'This ticket is for another conversation' })

    const asToken = await one.call(alice, NSID.getConvos, { token: await ticketOf(one, alice) })
    expect(asToken.status).toBe(401)
  })

  it('refuses a conversation the ticket holder is not a member of, and more sockets than a caller may hold', async () => {
    const [alice, eve] = await Promise.all([TestUser.create(), TestUser.create()])
    const convo = await one.seed.createConvo(alice)
    const stranger = await connect(one.url, { ticket: await ticketOf(one, eve), convoId: convo.id })
    expect(await refusal(stranger)).toMatchObject({ error: 'NotMember' })

    const open = [await subscribe(one, alice), await subscribe(one, alice), await subscribe(one, alice)]
    expect(await refusal(await subscribe(one, alice))).toMatchObject({ error: 'RateLimitExceeded' })
    // The others are untouched: each hears the next message.
    await one.seed.sendMessage(alice, convo.id)
    await Promise.all(open.map((sub) => sub.waitFor(() => seqsOf(sub).length === 1)))
    // A socket closed frees its place, once: one more may open, and no more.
    open.pop()?.close()
    await vi.waitFor(() => expect(one.ctx.events.streamsOf(alice.did, 'websocket')).toBe(2))
    const again = await subscribe(one, alice)
    open.push(again)
    await one.seed.sendMessage(alice, convo.id)
    await again.waitFor(() => seqsOf(again).length === 1)
    expect(await refusal(await subscribe(one, alice))).toMatchObject({ error: 'RateLimitExceeded' })
    open.forEach((sub) => sub.close())
  })

  it('tells a plain GET to upgrade, and an upgrade elsewhere that there is no subscription there', async () => {
    const res = await fetch(`${one.url}/xrpc/${SUBSCRIBE}`)
    expect(res.status).toBe(426)
    expect(res.headers.get('upgrade')).toBe('websocket')
    expect(await res.json()).toMatchObject({ error: 'UpgradeRequired' })
    const upgrade = (path: string) =>
      new Promise<number | undefined>((resolve) => {
        const ws = new WebSocket(`${one.url.replace(/^http/, 'ws')}${path}`)
        ws.on('unexpected-response', (_req, answer) => resolve(answer.statusCode))
        ws.on('error', () => resolve(undefined))
      })
    expect(await upgrade(`/xrpc/${NSID.getConvos}`)).toBe(501)
    expect(await upgrade('/elsewhere')).toBe(404)
  })
})

describe('subscribeConvoEvents: events', () => {
  it('sends each message as a messageEvent with its ciphertext as CBOR bytes, and membership changes as they are committed', async () => {
    const [alice, bob, carol] = await Promise.all([TestUser.create(), TestUser.create(), TestUser.create()])
    const convo = await one.seed.createConvo(alice, [bob])
    const sub = await subscribe(two, bob, { convoId: convo.id })
    await one.seed.sendMessage(alice, convo.id)
    await one.seed.addMembers(alice, convo.id, [carol])
    await one.seed.removeMember(alice, convo.id, carol)
    await sub.waitFor(() => sub.events.length === 5)
    expect(sub.events.map((e) => e.$type.slice(SUBSCRIBE.length))).toEqual([
      '#messageEvent',
      '#messageEvent',
      '#membershipChangeEvent',
      '#messageEvent',
      '#membershipChangeEvent',
    ])
    const [message] = eventsOf(sub, '#messageEvent')
    expect(message?.message).toMatchObject({ convoId: convo.groupId, seq: 1, epoch: 1, sender: alice.did })
    expect((message?.message as { ciphertext: unknown }).ciphertext).toBeInstanceOf(Uint8Array)
    // Each live view is the stored message's, every field, as getMessages reads it by the same id.
    const stored = await one.call(bob, NSID.getMessages, { params: { convoId: convo.groupId } })
    const asJson = ({ ciphertext, ...view }: { ciphertext: Uint8Array }) => ({
      ...view,
      ciphertext: { $bytes: Buffer.from(ciphertext).toString('base64') },
    })
    expect(eventsOf(sub, '#messageEvent').map((e) => asJson(e.message as { ciphertext: Uint8Array }))).toEqual(
      stored.body.messages,
    )
    expect(eventsOf(sub, '#membershipChangeEvent')).toEqual([
      expect.objectContaining({ convoId: convo.groupId, did: carol.did, action: 'joined', actor: alice.did, epoch: 2 }),
      expect.objectContaining({
        convoId: convo.groupId,
        did: carol.did,
        action: 'removed',
        actor: alice.did,
        epoch: 3,
      }),
    ])
    // Every event's cursor is the position after it: ascending.
    const cursors = sub.events.map((e) => Number(e.cursor))
    expect([...cursors].sort((a, b) => a - b)).toEqual(cursors)
    sub.close()
  })

  it('sends a message of any size whole, in the WebSocket length form its size needs (16-bit, 64-bit)', async () => {
    const [alice, bob] = await Promise.all([TestUser.create(), TestUser.create()])
    const convo = await one.seed.createConvo(alice, [bob])
    const sub = await subscribe(one, bob, { convoId: convo.id })
    // Frames of about 1 KB and of more than 65,535 bytes.
    for (const size of [1_000, 70_000]) {
      const ciphertext = await message(alice, convo.id, randomBytes(size))
      expect((await one.seed.sendMessage(alice, convo.id, { ciphertext })).status).toBe(200)
      await sub.waitFor(() => eventsOf(sub, '#messageEvent').some((e) => sameBytes(e, ciphertext)))
    }
    expect(eventsOf(sub, '#messageEvent').map((e) => (e.message as { seq: number }).seq)).toEqual([1, 2])
    sub.close()
  })

  it('hears, on a socket of all conversations, a conversation joined after it opened, and a removed member stops at its removal', async () => {
    const [alice, bob] = await Promise.all([TestUser.create(), TestUser.create()])
    const bobs = await subscribe(one, bob)
    const convo = await two.seed.createConvo(alice, [bob])
    await two.seed.sendMessage(alice, convo.id)
    await bobs.waitFor(() => seqsOf(bobs).length === 1)
    // Both members' joining: Bob's own tells him of the conversation.
    expect(eventsOf(bobs, '#membershipChangeEvent')).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ convoId: convo.groupId, did: alice.did, action: 'joined', epoch: 1 }),
        expect.objectContaining({ convoId: convo.groupId, did: bob.did, action: 'joined', actor: alice.did, epoch: 1 }),
      ]),
    )

    await two.seed.removeMember(alice, convo.id, bob)
    await two.seed.sendMessage(alice, convo.id)
    // A marker after it: a conversation of Bob's own.
    const own = await two.seed.createConvo(bob)
    await two.seed.sendMessage(bob, own.id)
    await bobs.waitFor(() =>
      eventsOf(bobs, '#messageEvent').some((e) => (e.message as { convoId: string }).convoId === own.groupId),
    )
    const ofConvo = bobs.events.filter(
      (e) => (e.convoId ?? (e.message as { convoId?: string } | undefined)?.convoId) === convo.groupId,
    )
    expect(ofConvo.map((e) => [e.$type.slice(SUBSCRIBE.length), e.action ?? null])).toEqual([
      ['#membershipChangeEvent', 'joined'],
      ['#membershipChangeEvent', 'joined'],
      ['#messageEvent', null],
      ['#membershipChangeEvent', 'removed'],
    ])
    bobs.close()
  })

  it("ends a taken-down account's sockets and event streams, on every instance, when it hears of the takedown; others go on", async () => {
    const [alice, bob] = await Promise.all([TestUser.create(), TestUser.create()])
    const convo = await one.seed.createConvo(alice, [bob])
    const [bobsSocket, bobsStream, alicesSocket] = await Promise.all([
      subscribe(two, bob),
      openStream(two.url, bob),
      subscribe(two, alice),
    ])
    await takeDown(one.ctx.db, { did: bob.did })
    await two.ctx.takedowns.refresh()
    expect(await refusal(bobsSocket)).toEqual({
      error: 'AccountTakedown',
      message: `The account ${bob.did} has been taken down by the operator of this server`,
      code: 1008,
    })
    await bobsStream.closed
    await one.seed.sendMessage(alice, convo.id)
    await alicesSocket.waitFor(() => seqsOf(alicesSocket).length === 1)
    expect(bobsStream.events).toEqual([])
    alicesSocket.close()
  })

  it('tells of role changes as membershipChangeEvents (infoEvents over SSE): whose, which, by whom; an heir the server made admin with no actor', async () => {
    const [alice, bob, carol] = await Promise.all([TestUser.create(), TestUser.create(), TestUser.create()])
    const convo = await one.seed.createConvo(alice, [bob, carol])
    const sub = await subscribe(two, carol, { convoId: convo.id })
    const stream = await openStream(two.url, carol, { convoId: convo.id })
    const roles = [
      NSID.promoteModerator,
      NSID.demoteModerator,
      NSID.promoteAdmin,
      NSID.demoteAdmin,
      NSID.promoteModerator,
    ]
    for (const nsid of roles) {
      expect((await one.call(alice, nsid, { input: { convoId: convo.id, targetDid: bob.did } })).status).toBe(200)
    }
    // The last admin leaves: the moderator becomes admin.
    expect((await one.call(alice, NSID.leaveConvo, { input: { convoId: convo.id } })).status).toBe(200)
    await sub.waitFor(() => sub.events.length === 7)
    expect(
      eventsOf(sub, '#membershipChangeEvent').map(({ did, action, actor, epoch }) => ({ did, action, actor, epoch })),
    ).toEqual([
      ...['promotedModerator', 'demotedModerator', 'promotedAdmin', 'demotedAdmin', 'promotedModerator'].map(
        (action) => ({ did: bob.did, action, actor: alice.did, epoch: 1 }),
      ),
      { did: alice.did, action: 'left', actor: undefined, epoch: 1 },
      { did: bob.did, action: 'promotedAdmin', actor: undefined, epoch: 1 },
    ])
    // The seed-era stream hears the role changes alone, at the same cursors.
    await stream.waitFor((events) => events.length === 6)
    const roleCursors = sub.events.filter((e) => e.action !== 'left').map((e) => e.cursor)
    expect(stream.events.map((e) => [e.id, e.data.$type])).toEqual(
      roleCursors.map((cursor) => [cursor, `${NSID.streamConvoEvents}#infoEvent`]),
    )
    expect(stream.events[0]?.data.info).toBe(`roleChange ${convo.id}: ${bob.did} promotedModerator by ${alice.did}`)
    expect(stream.events[5]?.data.info).toBe(`roleChange ${convo.id}: ${bob.did} promotedAdmin`)
    sub.close()
    stream.close()
  })

  it('names conversations by their MLS group id, as client-era clients do, and takes them by it (any case) or by id', async () => {
    const [alice, bob] = await Promise.all([TestUser.create(), TestUser.create()])
    const convo = await one.seed.createConvo(alice, [bob])
    const groupId = convo.groupId
    // A ticket for the conversation by its group id opens a socket that names it by id, and the other way round.
    const bobs = await connect(one.url, { ticket: await ticketOf(one, bob, groupId.toUpperCase()), convoId: convo.id })
    const alices = await subscribe(two, alice, { convoId: groupId }, convo.id)
    await one.seed.sendMessage(alice, convo.id)
    await bobs.waitFor(() => seqsOf(bobs).length === 1)
    await alices.waitFor(() => seqsOf(alices).length === 1)
    expect(eventsOf(bobs, '#messageEvent')[0]?.message).toMatchObject({ convoId: groupId, seq: 1 })
    alices.sendFrame('#typing', { convoId: groupId.toUpperCase(), isTyping: true })
    await bobs.waitFor(() => eventsOf(bobs, '#typingEvent').length === 1)
    expect(eventsOf(bobs, '#typingEvent')[0]).toMatchObject({ convoId: groupId, did: alice.did, isTyping: true })
    bobs.close()
    alices.close()
  })

  it('sends new devices, GroupInfo requests and readdition requests to the members, and resumes exactly across every kind of event', async () => {
    const [alice, bob] = await Promise.all([TestUser.create(), TestUser.create()])
    const convo = await one.seed.createConvo(alice, [bob])
    const sub = await subscribe(one, alice, { convoId: convo.id })
    await one.seed.sendMessage(bob, convo.id)
    // Bob's new device, registered on the other instance.
    const ipad = await TestDevice.of(bob)
    const registration = ipad.registration(await ipad.keyPackages(1), { deviceName: 'Bob’s iPad' })
    const registered = await two.call(bob, NSID.registerDevice, { input: registration })
    expect(registered.status).toBe(200)
    const refresh = await two.call(bob, NSID.groupInfoRefresh, { input: { convoId: convo.id } })
    expect(refresh.body).toEqual({ requested: true, activeMembers: 1 })
    const readd = await one.call(bob, NSID.readdition, { input: { convoId: convo.id } })
    expect(readd.body).toEqual({ requested: true, activeMembers: 1 })
    assertOutputOf('clientEra', NSID.groupInfoRefresh, refresh.body)
    assertOutputOf('clientEra', NSID.readdition, readd.body)
    // Registered again: not a new device, nothing to hear of (the next message is the marker).
    expect((await two.call(bob, NSID.registerDevice, { input: registration })).body.deviceId).toBe(
      registered.body.deviceId,
    )
    await one.seed.sendMessage(bob, convo.id)
    await sub.waitFor(() => seqsOf(sub).length === 2)
    expect(sub.events.map((e) => e.$type.slice(SUBSCRIBE.length))).toEqual([
      '#messageEvent',
      '#newDeviceEvent',
      '#groupInfoRefreshRequestedEvent',
      '#readditionRequestedEvent',
      '#messageEvent',
    ])
    const pending = await one.call(alice, NSID.getPendingDeviceAdditions, { params: { convoIds: [convo.id] } })
    expect(pending.body.pendingAdditions).toHaveLength(1)
    const deviceId = registered.body.deviceId
    expect(sub.events[1]).toMatchObject({
      convoId: convo.groupId,
      userDid: bob.did,
      deviceId,
      deviceName: 'Bob’s iPad',
      deviceCredentialDid: `${bob.did}#${deviceId}`,
      pendingAdditionId: pending.body.pendingAdditions[0]?.id,
    })
    expect(sub.events[2]).toMatchObject({
      convoId: convo.groupId,
      requestedBy: bob.did,
      requestedAt: expect.any(String),
    })
    expect(sub.events[3]).toMatchObject({ convoId: convo.groupId, userDid: bob.did, requestedAt: expect.any(String) })
    sub.close()

    // From each event's cursor, everything after it, once, in order, on either instance.
    const resumed = await Promise.all(
      sub.events.map((event, i) =>
        subscribe(i % 2 ? one : two, alice, { convoId: convo.id, cursor: event.cursor as string }),
      ),
    )
    const marker = await one.seed.sendMessage(bob, convo.id)
    for (const [i, tail] of resumed.entries()) {
      await tail.waitFor(() => seqsOf(tail).includes(marker.body.seq as number))
      const cursors = tail.events.map((e) => e.cursor)
      expect(cursors.slice(0, -1)).toEqual(sub.events.slice(i + 1).map((e) => e.cursor))
      tail.close()
    }
  })

  it('refuses a cursor from the future, and starts a cursor older than what is kept at the oldest kept, with an infoEvent', async () => {
    const alice = await TestUser.create()
    const convo = await one.seed.createConvo(alice)
    for (let i = 0; i < 3; i++) await one.seed.sendMessage(alice, convo.id)
    const { rows } = await sql<{ event_id: number }>`
      SELECT event_id FROM message WHERE convo_id = ${convo.id} ORDER BY event_id`.execute(one.ctx.db)
    const ids = rows.map((r) => Number(r.event_id))
    const future = await subscribe(one, alice, { cursor: String(ids[2]! + 1_000_000) })
    expect(await refusal(future)).toMatchObject({ error: 'FutureCursor', code: 1008 })
    const bad = await subscribe(one, alice, { cursor: 'abc' })
    expect(await refusal(bad)).toMatchObject({ error: 'InvalidCursor' })

    // As a retention sweep would: the log's events up to the conversation's first message are gone
    // (long passed: the hub has read past them).
    await one.ctx.events.caughtUp()
    await sql`DELETE FROM message WHERE event_id <= ${ids[0]!}`.execute(one.ctx.db)
    await sql`DELETE FROM convo_event WHERE event_id <= ${ids[0]!}`.execute(one.ctx.db)
    const old = await subscribe(one, alice, { convoId: convo.id, cursor: String(ids[0]! - 1) })
    await old.waitFor(() => seqsOf(old).length === 2)
    expect(old.events[0]).toMatchObject({
      $type: `${SUBSCRIBE}#infoEvent`,
      cursor: String(ids[1]! - 1),
      info: expect.stringContaining('OutdatedCursor'),
    })
    expect(seqsOf(old)).toEqual([2, 3])
    old.close()
  })
})

describe('groupInfoRefresh and readdition', () => {
  it('are for current members only, and ask no one when no one else is a member', async () => {
    const [alice, bob, eve] = await Promise.all([TestUser.create(), TestUser.create(), TestUser.create()])
    const convo = await one.seed.createConvo(alice, [bob])
    const alone = await one.seed.createConvo(alice)
    for (const nsid of [NSID.groupInfoRefresh, NSID.readdition] as const) {
      const stranger = await one.call(eve, nsid, { input: { convoId: convo.id } })
      expect([stranger.status, stranger.body.error]).toEqual([403, 'NotMember'])
      const unknown = await one.call(alice, nsid, { input: { convoId: 'f'.repeat(32) } })
      expect([unknown.status, unknown.body.error]).toEqual([404, 'ConvoNotFound'])
    }
    await one.seed.removeMember(alice, convo.id, bob)
    const former = await one.call(bob, NSID.readdition, { input: { convoId: convo.id } })
    expect([former.status, former.body.error]).toEqual([403, 'NotMember'])
    // Alone: nothing is asked of anyone.
    const refresh = await one.call(alice, NSID.groupInfoRefresh, { input: { convoId: alone.id } })
    expect(refresh.body).toEqual({ requested: false, activeMembers: 0 })
    const readd = await one.call(alice, NSID.readdition, { input: { convoId: alone.id } })
    expect([readd.status, readd.body.error]).toEqual([400, 'NoActiveMembers'])
    const { rows } =
      await sql`SELECT 1 FROM convo_event WHERE convo_id IN (${convo.id}, ${alone.id}) AND kind <> 'membership'`.execute(
        one.ctx.db,
      )
    expect(rows).toEqual([])
  })
})
