import type { LexValue } from '@atproto/lex-cbor'
import type { Typing } from '../../events/hub.js'
import {
  cursorInFuture,
  keptFrom,
  Outbox,
  StreamEnded,
  type DirectReader,
  type OutboxEvent,
} from '../../events/outbox.js'
import { encodeCursor, parseCursor, type Watermark } from '../../events/watermark.js'
import type { Params } from '../../lexicon/types/blue.catbird.mls.subscribeConvoEvents.js'
import { isMessage, type LogEvent } from '../../services/eventLog.js'
import { Refusal } from '../../services/errors.js'
import { groupIdOf, knownGroupId, requireMember } from '../../services/membership.js'
import { toMessageView } from '../../services/messages.js'
import { redeemTicket } from '../../services/tickets.js'
import {
  CloseCode,
  messageFrame,
  type ClientFrame,
  type SubscriptionHandler,
  type SubscriptionInput,
  type WireFrame,
} from '../../xrpc/websocket.js'

/** A client may relay this many typing notices at once, then one per TYPING_REFILL_MS. */
const TYPING_BURST = 3
const TYPING_REFILL_MS = 1_000

type Db = SubscriptionInput<Params>['db']

/**
 * A socket's typing rate: whether one more notice may go now. The notices
 * earned since the last are counted when one comes, not by a timer of every
 * socket ticking whether it types or not.
 */
function typingAllowance(): () => boolean {
  let tokens = TYPING_BURST
  let countedAt = performance.now()
  return () => {
    const now = performance.now()
    tokens = Math.min(TYPING_BURST, tokens + (now - countedAt) / TYPING_REFILL_MS)
    countedAt = now
    if (tokens < 1) return false
    tokens--
    return true
  }
}

const refused = (error: string, message: string) => new Refusal('forbidden', error, message)
const invalid = (error: string, message: string) => new Refusal('invalid', error, message)

/** The frame type of each kind of conversation event. */
const CONVO_EVENT_TYPES = {
  membership: '#membershipChangeEvent',
  role: '#membershipChangeEvent',
  new_device: '#newDeviceEvent',
  group_info_refresh: '#groupInfoRefreshRequestedEvent',
  readdition: '#readditionRequestedEvent',
} as const

// Sockets get the hub's same event objects: encode each once (per cursor: with one range of event ids, always one).
const frames = new WeakMap<LogEvent, { cursor: string; frame: WireFrame | Promise<WireFrame> }>()

/** An event of the log as one frame: its lexicon event, whose cursor resumes after it, naming its conversation by group id. */
function encodeEvent(event: LogEvent, cursor: string, groupId: string): WireFrame {
  return isMessage(event)
    ? messageFrame('#messageEvent', { cursor, message: toMessageView(event, groupId) as unknown as LexValue })
    : messageFrame(CONVO_EVENT_TYPES[event.kind], {
        ...(event.body as Record<string, LexValue>),
        cursor,
        convoId: groupId,
      })
}

/** An event's frame, made by the first socket that sends it: at once whenever its conversation's group id is known. */
function frameOf(db: Db, event: LogEvent, cursor: string): WireFrame | Promise<WireFrame> {
  const entry = frames.get(event)
  const cached = entry?.cursor === cursor ? entry.frame : undefined
  if (cached instanceof Uint8Array) return cached
  const groupId = knownGroupId(event.convo_id)
  if (groupId === undefined && cached) return cached
  const frame =
    groupId !== undefined
      ? encodeEvent(event, cursor, groupId)
      : groupIdOf(db, event.convo_id).then((read) => encodeEvent(event, cursor, read))
  frames.set(event, { cursor, frame })
  return frame
}

/** The frames of a batch, without waiting when every one is made already. */
function framesOf(db: Db, batch: OutboxEvent[]): WireFrame[] | Promise<WireFrame[]> {
  const made = batch.map(({ event, cursor }) => frameOf(db, event, cursor))
  return made.every((frame) => frame instanceof Uint8Array) ? (made as WireFrame[]) : Promise.all(made)
}

/** Whether the frames of these events can be made at once (their conversations' group ids are known). */
function groupIdsKnown(events: readonly LogEvent[]): boolean {
  for (const event of events) if (knownGroupId(event.convo_id) === undefined) return false
  return true
}

/** Someone's typing, for a stream at `cursor` (typing is not in the log: resuming from it resumes from there). */
const typingFrame = (typing: Typing, cursor: string, groupId: string) =>
  messageFrame('#typingEvent', { ...typing, convoId: groupId, cursor })

function resumeFrom(cursor: string | undefined): Watermark | undefined {
  if (cursor === undefined) return undefined
  const from = parseCursor(cursor)
  if (!from) throw invalid('InvalidCursor', 'cursor must be the cursor of an event received earlier')
  return from
}

/** A client's typing notice: `#typing` with `{convoId, isTyping}`. */
function readTyping(frame: ClientFrame): { convoId: string; isTyping: boolean } {
  if (frame.type !== '#typing') {
    throw invalid('InvalidFrame', `Unknown frame type ${String(frame.type)}: a client sends #typing frames only`)
  }
  const body = frame.body as Record<string, unknown> | null
  if (typeof body?.convoId !== 'string' || typeof body.isTyping !== 'boolean') {
    throw invalid('InvalidFrame', '#typing takes {convoId: string, isTyping: boolean}')
  }
  return { convoId: body.convoId, isTyping: body.isTyping }
}

/**
 * Live events over a WebSocket, opened by a ticket of getSubscriptionTicket
 * in the query: every event of the log the caller may see (messages,
 * membership changes, new devices, GroupInfo requests), of one conversation
 * or of all of the caller's, those joined later included, each with the
 * cursor that resumes after it (replay, then live, with no gap and no
 * duplicate: src/events/outbox.ts). A cursor beyond the log is refused
 * (FutureCursor); one older than what is kept gets an infoEvent
 * (OutdatedCursor) and the stream starts at the oldest event kept. Members'
 * typing is relayed, never stored.
 */
const subscribeConvoEvents: SubscriptionHandler<Params> = async ({ params, db, ctx, log, request }) => {
  const { config, events } = ctx
  if (params.ticket === undefined) {
    throw refused(
      'AuthRequired',
      request.headers.authorization !== undefined
        ? 'The ticket goes in the query (?ticket=...), not in a header: get one from getSubscriptionTicket'
        : 'A ticket is required (?ticket=...): get one from getSubscriptionTicket',
    )
  }
  const from = resumeFrom(params.cursor)
  const ticket = await redeemTicket(db, params.ticket)
  const did = ticket.did
  // Named by its id or its group id; the ticket names it by id.
  const named = params.convoId === undefined ? undefined : (await requireMember(db, params.convoId, did)).convo.id
  if (ticket.convoId !== undefined && named !== undefined && ticket.convoId !== named) {
    throw refused('InvalidTicket', 'This ticket is for another conversation')
  }
  const convoId = named ?? ticket.convoId
  if (convoId !== undefined && named === undefined) await requireMember(db, convoId, did)
  if (events.streamsOf(did, 'websocket') >= config.WEBSOCKET_MAX_SOCKETS_PER_CALLER) {
    throw refused('RateLimitExceeded', `At most ${config.WEBSOCKET_MAX_SOCKETS_PER_CALLER} subscriptions per caller`)
  }
  let start = from
  let outdated: WireFrame | undefined
  if (from) {
    if (await cursorInFuture(db, from)) {
      throw invalid('FutureCursor', 'This cursor is ahead of every event of this server')
    }
    const kept = await keptFrom(db, from)
    if (kept.outdated) {
      start = kept.kept
      outdated = messageFrame('#infoEvent', {
        cursor: encodeCursor(kept.kept),
        info: 'OutdatedCursor: events after this cursor are no longer kept; the stream starts at the oldest kept (resync with getMessages)',
      })
    }
  }

  // Where the stream starts is fixed before the client hears it is open.
  let relayTyping: ((typing: Typing) => void) | undefined
  let tooSlow: (() => void) | undefined
  const outbox = await Outbox.open(
    events,
    db,
    {
      did,
      convoId,
      transport: 'websocket',
      typing: (typing) => relayTyping?.(typing),
      maxPendingBytes: config.WEBSOCKET_MAX_BUFFER_BYTES,
      tooSlow: () => tooSlow?.(),
    },
    start,
  )
  return {
    abandon: () => outbox.abandon(),
    run: async (socket) => {
      if (outdated) socket.send(outdated)
      // The cursor of the last event handed to the socket: a typing frame's, which the client may resume from.
      let sent = outbox.cursor
      relayTyping = (typing) =>
        void groupIdOf(db, typing.convoId).then(
          (groupId) => socket.send(typingFrame(typing, sent, groupId)),
          (err: unknown) => log.warn({ err }, 'typing not relayed'),
        )
      // After what it was sent: the client resumes from its last cursor, with nothing skipped.
      tooSlow = () =>
        socket.fail(
          'ConsumerTooSlow',
          'Events came faster than this connection took them; reconnect with the cursor of the last event received',
        )
      // Too many while the socket was opening.
      if (outbox.overflowed) tooSlow()
      const allowance = typingAllowance()
      socket.onMessage(async (frame) => {
        const typing = readTyping(frame)
        // Over the rate, typing notices are dropped: they say nothing a later one does not.
        if (!allowance()) return
        const { convo } = await requireMember(db, typing.convoId, did)
        events.typing({ convoId: convo.id, isTyping: typing.isTyping, did })
      })
      log.info({ did, convoId, cursor: params.cursor }, 'subscription open')
      try {
        // While the socket has nothing queued, live events whose frames can be made at once go to it in the hub's call.
        const direct: DirectReader = {
          ready: (events) => socket.idle && groupIdsKnown(events),
          take: (event, cursor) => {
            try {
              socket.enqueue(frameOf(db, event, cursor) as WireFrame)
              sent = cursor
            } catch (err) {
              socket.failWith(err)
            }
          },
          taken: () => socket.flush(),
        }
        for await (const batch of outbox.batches(socket.signal, direct)) {
          const made = framesOf(db, batch)
          const frames = made instanceof Promise ? await made : made
          // Events wait in the outbox, counted, while the client reads (replay waits for it too).
          if (!socket.idle) await socket.drained()
          socket.sendAll(frames)
          sent = (batch[batch.length - 1] as OutboxEvent).cursor
        }
      } catch (err) {
        if (!(err instanceof StreamEnded)) throw err
        if (err.error !== undefined) socket.fail(err.error, err.reason)
        else socket.close(CloseCode.GoingAway, err.reason)
      }
    },
  }
}

export default subscribeConvoEvents
