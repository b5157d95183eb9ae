import { sql } from 'kysely'
import type { Message } from '../db/schema.js'
import { replayMessages } from '../events/hub.js'
import type * as StreamConvoEvents from '../lexicon/types/blue.catbird.mls.streamConvoEvents.js'
import { requireMember } from '../services/convos.js'
import { toMessageView } from '../services/messages.js'
import { invalidRequest, XRPCErrorWithHeaders } from '../xrpc/errors.js'
import { xrpcHandler } from '../xrpc/types.js'
import { toWireJson } from '../xrpc/wire.js'

const NSID = 'blue.catbird.mls.streamConvoEvents'
const REPLAY_BATCH = 500

function parseCursor(cursor: string | string[] | undefined): number | undefined {
  if (cursor === undefined) return undefined
  if (typeof cursor !== 'string' || !/^\d{1,15}$/.test(cursor)) {
    throw invalidRequest('InvalidCursor', 'cursor must be the id of an event received earlier')
  }
  return Number(cursor)
}

// The hub hands every stream the same row objects: serialize each once.
const frames = new WeakMap<Message, string>()

/** A message as one SSE event: a messageEvent whose id is its resume cursor. */
function frameOf(m: Message): string {
  let frame = frames.get(m)
  if (frame === undefined) {
    const event = { $type: `${NSID}#messageEvent`, cursor: String(m.event_id), message: toMessageView(m) }
    frame = `id: ${m.event_id}\ndata: ${JSON.stringify(toWireJson(event))}\n\n`
    frames.set(m, frame)
  }
  return frame
}

/**
 * Server-Sent Events: each message the caller may see, as a messageEvent
 * whose SSE id is its resume cursor. With `cursor` (or Last-Event-ID) the
 * stream first replays what came after it, then continues live; the hub's
 * settled position is where replay hands over to live events.
 */
export default xrpcHandler<StreamConvoEvents.Params, undefined, undefined>(
  async ({ params, caller, db, ctx, request, reply, log }) => {
    const { config, events } = ctx
    const after = parseCursor(params.cursor ?? request.headers['last-event-id'])
    if (params.convoId !== undefined) await requireMember(db, params.convoId, caller)
    if (after !== undefined && after > 0) {
      const { rows } = await sql<{ oldest: number | null }>`SELECT min(event_id) AS oldest FROM message`.execute(db)
      if (rows[0]?.oldest != null && after < rows[0].oldest - 1) {
        throw invalidRequest('CursorTooOld', 'Events after this cursor are no longer kept; resync with getMessages')
      }
    }
    if (events.streamsOf(caller) >= config.SSE_MAX_STREAMS_PER_CALLER) {
      throw new XRPCErrorWithHeaders(
        429,
        `At most ${config.SSE_MAX_STREAMS_PER_CALLER} event streams per caller`,
        'RateLimitExceeded',
        { 'retry-after': '5' },
      )
    }

    reply.hijack()
    const raw = reply.raw
    raw.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    })
    let lastSent = after ?? events.settled
    let replaying = after !== undefined
    const buffered: Message[] = []
    let closed = false
    const close = (reason: string) => {
      if (closed) return
      closed = true
      log.info({ reason, lastSent }, 'event stream closed')
      unsubscribe()
      clearInterval(keepAlive)
      raw.end()
    }
    const send = (messages: Message[]) => {
      for (const m of messages) {
        if (closed || m.event_id <= lastSent) continue
        raw.write(frameOf(m))
        lastSent = m.event_id
      }
      // A client that does not read is cut off rather than buffered without bound.
      if (raw.writableLength > config.SSE_MAX_BUFFER_BYTES) close('slow consumer')
    }
    const unsubscribe = events.subscribe({
      did: caller,
      ...(params.convoId !== undefined ? { convoId: params.convoId } : {}),
      deliver: (messages) => (replaying ? buffered.push(...messages) : send(messages)),
      close,
    })
    const keepAlive = setInterval(() => raw.write(': keep-alive\n\n'), config.SSE_KEEPALIVE_SECONDS * 1000)
    raw.on('close', () => close('client went away'))
    raw.write(': stream open\n\n')

    try {
      while (replaying && !closed) {
        const rows = await replayMessages(db, {
          did: caller,
          convoId: params.convoId,
          after: lastSent,
          upTo: events.settled,
          limit: REPLAY_BATCH,
        })
        send(rows)
        if (rows.length < REPLAY_BATCH) replaying = false
      }
      send(buffered.splice(0))
    } catch (err) {
      log.warn({ err }, 'event stream replay failed')
      close('replay failed')
    }
  },
)
