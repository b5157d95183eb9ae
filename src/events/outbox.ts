import type { Db } from '../db/schema.js'
import { lowestEventId, replayEvents, type MessageEvent } from '../services/eventLog.js'
import type { EventHub } from './hub.js'
import {
  advance,
  covers,
  encodeCursor,
  rangeSegment,
  segmentsBetween,
  takeInOrder,
  type Watermark,
} from './watermark.js'

const REPLAY_BATCH = 500

/** One event of a stream: a message, and the stream's position after it (its resume cursor). */
export interface OutboxEvent {
  message: MessageEvent
  cursor: string
}

/** The hub ended the stream (the server is shutting down). */
export class StreamEnded extends Error {
  constructor(readonly reason: string) {
    super(`event stream ended: ${reason}`)
  }
}

/**
 * Whether events after `from` are gone: in some range it names, the oldest
 * event kept is more than one past it.
 */
export async function cursorTooOld(db: Db, from: Watermark): Promise<boolean> {
  for (const [range, id] of from) {
    const oldest = await lowestEventId(db, rangeSegment(range))
    if (oldest !== undefined && id < oldest - 1) return true
  }
  return false
}

/**
 * The events one member may see, as one async iterator: from a position,
 * first those already stored (replay), then live ones from the hub, with
 * nothing lost or repeated at the switch. Live events are buffered from the
 * moment it opens, while replay reads up to the hub's watermark, which keeps
 * moving: replay stops once it has caught up, and buffered events it
 * already gave are skipped. (Shaped after atproto's pds sequencer outbox.)
 */
export class Outbox {
  private readonly live: MessageEvent[] = []
  private ended: string | undefined
  private wake: (() => void) | undefined
  private readonly unsubscribe: () => void
  /** Where the stream starts: the resume position, or the hub's watermark when it opened. */
  private start: Watermark = new Map()

  private constructor(
    private readonly hub: EventHub,
    private readonly db: Db,
    private readonly opts: { did: string; convoId?: string | undefined },
    private readonly resuming: boolean,
  ) {
    this.unsubscribe = hub.subscribe({
      ...opts,
      deliver: (messages) => {
        this.live.push(...messages)
        this.wake?.()
      },
      close: (reason) => {
        this.ended = reason
        this.wake?.()
      },
    })
  }

  /**
   * Opens the outbox of events after `from`, or of those committed from now
   * on: once it resolves, where the stream starts is fixed (the client may be
   * told it is open). Iterate `events` next; it ends the subscription.
   */
  static async open(
    hub: EventHub,
    db: Db,
    opts: { did: string; convoId?: string | undefined },
    from: Watermark | undefined,
  ): Promise<Outbox> {
    const outbox = new Outbox(hub, db, opts, from !== undefined)
    if (from) outbox.start = new Map(from)
    else {
      await hub.caughtUp()
      outbox.start = hub.watermark
    }
    return outbox
  }

  /** The events, until `signal` aborts; throws StreamEnded when the hub ends the stream. */
  async *events(signal: AbortSignal): AsyncGenerator<OutboxEvent> {
    const onAbort = () => this.wake?.()
    signal.addEventListener('abort', onAbort)
    try {
      const position = this.start
      const stopped = () => signal.aborted || this.ended !== undefined
      if (this.resuming) yield* this.replay(position, stopped)
      while (!stopped()) {
        for (const message of this.live.splice(0)) {
          if (covers(position, message.event_id)) continue
          advance(position, message.event_id)
          yield { message, cursor: encodeCursor(position) }
          if (stopped()) break
        }
        if (this.live.length === 0 && !stopped()) await new Promise<void>((resolve) => (this.wake = resolve))
      }
      if (this.ended !== undefined) throw new StreamEnded(this.ended)
    } finally {
      this.unsubscribe()
      signal.removeEventListener('abort', onAbort)
    }
  }

  /** Stored events after `position` up to the hub's watermark, each conversation's in order; advances `position`. */
  private async *replay(position: Watermark, stopped: () => boolean): AsyncGenerator<OutboxEvent> {
    while (!stopped()) {
      const upTo = this.hub.watermark
      const segments = segmentsBetween(position, upTo)
      // With several ranges, each event says which one it follows in its conversation.
      const { events, full } = await replayEvents(this.db, {
        ...this.opts,
        segments,
        withPrev: segments.length > 1,
        limit: REPLAY_BATCH,
      })
      const before = new Map(position)
      const taken = takeInOrder(events, position, {
        // Ids this member may not see are missing on purpose.
        skipMissing: () => true,
        pending: (prevId) => covers(upTo, prevId) && !covers(position, prevId),
      })
      for (const message of taken) {
        advance(before, message.event_id)
        yield { message, cursor: encodeCursor(before) }
      }
      if (!full && taken.length === events.length) return
    }
  }
}
