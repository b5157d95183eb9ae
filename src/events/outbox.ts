import type { Db } from '../db/schema.js'
import { highestEventId, isMessage, lowestEventId, replayEvents, type LogEvent } from '../services/eventLog.js'
import type { EventHub, Subscriber } from './hub.js'
import {
  advance,
  covers,
  cursorAfter,
  encodeCursor,
  rangeOf,
  rangeSegment,
  rangeStart,
  segmentsBetween,
  takeInOrder,
  type Watermark,
} from './watermark.js'

const REPLAY_BATCH = 500

/** One event of a stream: an event of the log, and the stream's position after it (its resume cursor). */
export interface OutboxEvent {
  event: LogEvent
  cursor: string
}

/** The hub ended the stream (the server is shutting down, or the account was taken down). */
export class StreamEnded extends Error {
  constructor(
    readonly reason: string,
    /** Why, as an XRPC error name, when it is not the server's doing (see Subscriber.close). */
    readonly error?: string,
  ) {
    super(`event stream ended: ${reason}`)
  }
}

/** About what an event weighs on the wire (its ciphertext, and the rest). */
const weightOf = (event: LogEvent): number => (isMessage(event) ? event.ciphertext.length : 0) + 256

/**
 * Where a resume position stands against what is kept: `kept` is the
 * position itself, or, in each range where events after it are gone (the
 * oldest event kept is more than one past it), the position just before the
 * oldest kept; `outdated` says whether that happened.
 */
export async function keptFrom(db: Db, from: Watermark): Promise<{ kept: Watermark; outdated: boolean }> {
  const kept = new Map(from)
  let outdated = false
  for (const [range, id] of from) {
    const oldest = await lowestEventId(db, rangeSegment(range))
    if (oldest !== undefined && id < oldest - 1) {
      kept.set(range, oldest - 1)
      outdated = true
    }
  }
  return { kept, outdated }
}

/** Whether a position names an event that does not exist yet, in some range (a cursor of another server or a forged one). */
export async function cursorInFuture(db: Db, from: Watermark): Promise<boolean> {
  for (const [range, id] of from) {
    if (id <= rangeStart(range)) continue
    const highest = await highestEventId(db, rangeStart(range + 1))
    if (highest === undefined || rangeOf(highest) < range || highest < id) return true
  }
  return false
}

/**
 * Who an outbox is for, and how typing reaches it (streams without `typing`
 * are not told). With `maxPendingBytes`, live events waiting for the reader
 * past that many bytes end the stream instead of piling up: `tooSlow` is
 * called (once, at once, even while the reader waits on its client) and the
 * events end.
 */
export type OutboxOptions = Pick<Subscriber, 'did' | 'convoId' | 'transport' | 'typing'> & {
  maxPendingBytes?: number
  tooSlow?: () => void
}

/**
 * A reader that can take live events in the hub's own call when it can at
 * once (a socket with nothing queued): while it waits for events and none are
 * waiting for it, they skip the wake-up and go straight to it, in order, one
 * by one (every stream of a conversation takes each event: nothing is made
 * per stream and event), then `taken` says the hub's call gave all it had.
 */
export interface DirectReader {
  /** Whether it can take these events now, whole and in order, without waiting. */
  ready(events: readonly LogEvent[]): boolean
  /** The next event, and the cursor that resumes after it. */
  take(event: LogEvent, cursor: string): void
  /** Every event of the hub's call is taken: what was held for them may leave. */
  taken(): void
}

/**
 * The events one member may see, as one async iterator: from a position,
 * first those already stored (replay), then live ones from the hub, with
 * nothing lost or repeated at the switch. Live events are buffered from the
 * moment it opens, while replay reads up to the hub's watermark, which keeps
 * moving: replay stops once it has caught up, and buffered events it
 * already gave are skipped. (Shaped after atproto's pds sequencer outbox.)
 */
export class Outbox implements Subscriber {
  readonly did: string
  readonly convoId: string | undefined
  readonly transport: Subscriber['transport']
  readonly typing: Subscriber['typing']
  private readonly live: LogEvent[] = []
  /** What the live events not yet given weigh (weightOf). */
  private pendingBytes = 0
  #overflowed = false
  private ended: { reason: string; error: string | undefined } | undefined
  private wake: (() => void) | undefined
  /** The reader waits for live events, and none wait for it. */
  private parked = false
  private direct: DirectReader | undefined
  private aborted = false
  private readonly unsubscribe: () => void
  /** Where the stream stands: the resume position or the hub's watermark when it opened, then after each event given. */
  private position: Watermark = new Map()
  /** The cursor of the last event given, or of where the stream starts. */
  private given = ''

  private constructor(
    private readonly hub: EventHub,
    private readonly db: Db,
    private readonly opts: OutboxOptions,
    private readonly resuming: boolean,
  ) {
    this.did = opts.did
    this.convoId = opts.convoId
    this.transport = opts.transport
    this.typing = opts.typing
    // The hub calls this stream's methods for every event: one shape of object for all of them.
    this.unsubscribe = hub.subscribe(this)
  }

  /** Live events from the hub: to the reader at once when it waits with nothing pending and can take them, else buffered. */
  deliver(events: readonly LogEvent[]): void {
    if (this.parked && this.live.length === 0 && !this.stopped() && this.direct?.ready(events)) {
      for (const event of events) if (this.pass(event)) this.direct.take(event, this.given)
      this.direct.taken()
      return
    }
    this.live.push(...events)
    for (const event of events) this.pendingBytes += weightOf(event)
    const { maxPendingBytes, tooSlow } = this.opts
    if (!this.#overflowed && maxPendingBytes !== undefined && this.pendingBytes > maxPendingBytes) {
      this.#overflowed = true
      tooSlow?.()
    }
    this.wake?.()
  }

  /** The hub ends the stream. */
  close(reason: string, error?: string): void {
    this.ended = { reason, error }
    this.wake?.()
  }

  /**
   * Opens the outbox of events after `from`, or of those committed from now
   * on: once it resolves, where the stream starts is fixed (the client may be
   * told it is open). Iterate `events` next; it ends the subscription.
   */
  static async open(hub: EventHub, db: Db, opts: OutboxOptions, from: Watermark | undefined): Promise<Outbox> {
    const outbox = new Outbox(hub, db, opts, from !== undefined)
    if (from) outbox.position = new Map(from)
    else {
      await hub.caughtUp()
      outbox.position = hub.watermark
    }
    outbox.given = encodeCursor(outbox.position)
    return outbox
  }

  /** Whether live events waiting for the reader passed `maxPendingBytes` (see OutboxOptions). */
  get overflowed(): boolean {
    return this.#overflowed
  }

  /** Ends the subscription of an outbox whose events are never read (its client went away first). */
  abandon(): void {
    this.unsubscribe()
  }

  /** The stream's position: the cursor of the last event it gave, or where it started. */
  get cursor(): string {
    return this.given
  }

  /** The events, until `signal` aborts; throws StreamEnded when the hub ends the stream. */
  async *events(signal: AbortSignal): AsyncGenerator<OutboxEvent> {
    for await (const batch of this.batches(signal)) yield* batch
  }

  /**
   * The events in batches: what is ready when the reader asks (a page of
   * replay, or the live events that came while it was busy), so that a busy
   * stream pays its reader's per-wake-up costs once per batch, not per event.
   * With `direct`, live events that find the reader waiting go to it at once.
   */
  async *batches(signal: AbortSignal, direct?: DirectReader): AsyncGenerator<OutboxEvent[]> {
    // Read on every event: a flag is cheaper to ask than the signal.
    this.aborted = signal.aborted
    const onAbort = () => {
      this.aborted = true
      this.wake?.()
    }
    signal.addEventListener('abort', onAbort)
    try {
      if (this.resuming) yield* this.replay()
      this.direct = direct
      while (!this.stopped()) {
        const waiting = this.live.splice(0)
        for (const event of waiting) this.pendingBytes -= weightOf(event)
        const batch = this.giveLive(waiting)
        if (batch.length > 0) yield batch
        if (this.live.length === 0 && !this.stopped()) {
          this.parked = true
          await new Promise<void>((resolve) => (this.wake = resolve))
          this.parked = false
        }
      }
      if (this.ended !== undefined) throw new StreamEnded(this.ended.reason, this.ended.error)
    } finally {
      this.parked = false
      this.unsubscribe()
      signal.removeEventListener('abort', onAbort)
    }
  }

  private stopped(): boolean {
    return this.aborted || this.ended !== undefined || this.#overflowed
  }

  /** Live events the stream has not given yet (replay may have), with their cursors; advances the position. */
  private giveLive(events: readonly LogEvent[]): OutboxEvent[] {
    const batch: OutboxEvent[] = []
    for (const event of events) if (this.pass(event)) batch.push({ event, cursor: this.given })
    return batch
  }

  /** Moves the position past a live event, unless it was given already (by replay): whether it is to be given now. */
  private pass(event: LogEvent): boolean {
    if (covers(this.position, event.event_id)) return false
    advance(this.position, event.event_id)
    this.given = cursorAfter(this.position, event.event_id)
    return true
  }

  /** Stored events after the position up to the hub's watermark, each conversation's in order; advances the position. */
  private async *replay(): AsyncGenerator<OutboxEvent[]> {
    const position = this.position
    while (!this.stopped()) {
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
      const batch = taken.map((event) => {
        advance(before, event.event_id)
        return { event, cursor: encodeCursor(before) }
      })
      if (batch.length > 0) {
        this.given = (batch[batch.length - 1] as OutboxEvent).cursor
        yield batch
      }
      if (!full && taken.length === events.length) return
    }
  }
}
