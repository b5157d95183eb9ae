import { keptFrom, Outbox, StreamEnded } from '../../events/outbox.js'
import { parseCursor, type Watermark } from '../../events/watermark.js'
import { NSID } from '../../lexicon/types/index.js'
import { toWireJson } from '../../lexicon/wire.js'
import { requireMember } from '../../services/membership.js'
import { isMessage, type ConvoLogEvent, type MessageEvent } from '../../services/eventLog.js'
import { toMessageView } from '../../services/messages.js'
import { invalidRequest, XRPCErrorWithHeaders } from '../../xrpc/errors.js'
import { sseEvent, SseStream } from '../../xrpc/sse.js'
import { handler } from '../../xrpc/types.js'

function resumeFrom(cursor: string | string[] | undefined): Watermark | undefined {
  if (cursor === undefined) return undefined
  const from = typeof cursor === 'string' ? parseCursor(cursor) : undefined
  if (!from) throw invalidRequest('InvalidCursor', 'cursor must be the id of an event received earlier')
  return from
}

// Streams get the hub's same message objects: serialize each once (per cursor: with one range of event ids, always one).
const frames = new WeakMap<MessageEvent, { cursor: string; frame: string }>()

/** A message as one SSE event: a messageEvent whose id is its resume cursor. */
function frameOf(message: MessageEvent, cursor: string): string {
  let cached = frames.get(message)
  if (cached?.cursor !== cursor) {
    // Only the seed-era clients stream over SSE: they know no padding.
    const view = toMessageView(message, message.convo_id, 'unpadded')
    const event = { $type: `${NSID.streamConvoEvents}#messageEvent`, cursor, message: view }
    cached = { cursor, frame: sseEvent(cursor, toWireJson(event)) }
    frames.set(message, cached)
  }
  return cached.frame
}

/** A role change, as an infoEvent: the seed-era lexicon has no event of its own for it. */
function roleChangeFrame(event: ConvoLogEvent, cursor: string): string {
  const { did, action, actor } = event.body as { did: string; action: string; actor?: string }
  const info = `roleChange ${event.convo_id}: ${did} ${action}${actor ? ` by ${actor}` : ''}`
  return sseEvent(cursor, toWireJson({ $type: `${NSID.streamConvoEvents}#infoEvent`, cursor, info }))
}

/**
 * Server-Sent Events: each message the caller may see, as a messageEvent
 * whose SSE id is its resume cursor, and role changes as infoEvents. With `cursor` (or Last-Event-ID) the
 * stream first replays what came after it, then continues live (see
 * src/events/outbox.ts).
 */
export default handler(NSID.streamConvoEvents, async ({ params, caller, db, ctx, request, reply, log }) => {
  const { config, events } = ctx
  const from = resumeFrom(params.cursor ?? request.headers['last-event-id'])
  const convoId = params.convoId === undefined ? undefined : (await requireMember(db, params.convoId, caller)).convo.id
  if (from && (await keptFrom(db, from)).outdated) {
    throw invalidRequest(
      'CursorTooOld',
      'Events after this cursor are no longer kept: resync with getMessages, or, where it answers CursorTooOld too, rejoin by external commit',
    )
  }
  if (events.streamsOf(caller, 'sse') >= config.SSE_MAX_STREAMS_PER_CALLER) {
    throw new XRPCErrorWithHeaders(
      429,
      `At most ${config.SSE_MAX_STREAMS_PER_CALLER} event streams per caller`,
      'RateLimitExceeded',
      { 'retry-after': '5' },
    )
  }

  // Where the stream starts is fixed before the client hears it is open.
  const outbox = await Outbox.open(events, db, { did: caller, convoId, transport: 'sse' }, from)
  const stream = new SseStream(reply, {
    keepAliveMs: config.SSE_KEEPALIVE_SECONDS * 1000,
    maxBufferBytes: config.SSE_MAX_BUFFER_BYTES,
    log,
  })
  try {
    // The other events of the log are the WebSocket subscription's, but for role changes: a cursor stays exact across them.
    for await (const { event, cursor } of outbox.events(stream.signal)) {
      if (isMessage(event)) stream.send(cursor, frameOf(event, cursor))
      else if (event.kind === 'role') stream.send(cursor, roleChangeFrame(event, cursor))
    }
  } catch (err) {
    if (!(err instanceof StreamEnded)) log.warn({ err }, 'event stream replay failed')
    stream.close(err instanceof StreamEnded ? err.reason : 'replay failed')
  }
})
