import type { FastifyBaseLogger } from 'fastify'
import { sql } from 'kysely'
import { AsyncResource } from 'node:async_hooks'
import { randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import type pg from 'pg'
import type { Db } from '../db/schema.js'
import {
  highestEventId,
  memberships,
  readEventRefs,
  readEvents,
  visibleTo,
  type EventRef,
  type LogEvent,
  type BatchRead,
  type Memberships,
  type Page,
} from '../services/eventLog.js'
import { Listener } from './listener.js'
import {
  advance,
  covers,
  encodeCursor,
  parseCursor,
  rangeOf,
  rangeStart,
  takeInOrder,
  type Watermark,
} from './watermark.js'

const MESSAGE_CHANNEL = 'catbird_message'
const TYPING_CHANNEL = 'catbird_typing'
const streamKey = (did: string, transport: Subscriber['transport']) => `${transport} ${did}`

/** A member started or stopped typing: relayed, never stored. */
export interface Typing {
  convoId: string
  did: string
  isTyping: boolean
}

/** One open event stream: who it is for and where its events go. */
export interface Subscriber {
  did: string
  convoId?: string | undefined
  /** What carries it: each transport has its own limit of streams per caller. */
  transport: 'sse' | 'websocket'
  /** Events it may see, in order; the array may be shared with other streams (read it, never change it). */
  deliver(events: readonly LogEvent[]): void
  /** Typing of other members of its conversations; streams without it are not told. */
  typing?(event: Typing): void
  /** The hub ends the stream: `error` names why when it is the caller's doing, not the server's. */
  close(reason: string, error?: string): void
}

export interface EventHubOptions {
  db: Db
  /** The session connection to LISTEN on; none: poll only (and send no NOTIFY). */
  listen: pg.ClientConfig | undefined
  log: FastifyBaseLogger
  /** A missing event id older than this is a rolled-back insert, not a late commit. */
  gapTimeoutMs?: number
  /** Read new events this often even without notifications (a safety net, or the only way when not listening). */
  pollIntervalMs?: number
  /** Least time between two notifications this instance sends; announcements in between share one. */
  notifyIntervalMs?: number
  /** With no stream open, least time between two reads of new events (see EventHub). */
  idleReadIntervalMs?: number
  batchSize?: number
  /** How a batch of whole events is read (see BatchRead): together unless told. */
  batchRead?: BatchRead
  /** Counts each read of new events, by what it read. */
  reads?: { inc(labels: { kind: 'messages' | 'ids' }, value: number): void }
}

/** A batch of new events, a page per range read; with the memberships of their conversations when whole events were read. */
interface Batch {
  pages: Array<Page<LogEvent | EventRef>>
  members?: Memberships
}

/** The events of one conversation `did` may see: the very array when it may see them all (nothing made per stream). */
function visibleOf(events: LogEvent[], did: string, joinedSeq: number | undefined): readonly LogEvent[] {
  for (const e of events) {
    if (!visibleTo(e, did, joinedSeq)) return events.filter((e) => visibleTo(e, did, joinedSeq))
  }
  return events
}

/**
 * Fans new messages out to this instance's event streams. One LISTEN
 * connection per instance hears about inserts from every instance; rows are
 * then read from the database (notifications carry ids only).
 *
 * Writers announce committed messages (`announce`), which serves this
 * instance's streams at once and sends a NOTIFY of its own transaction,
 * coalesced: at most one in flight and one per `notifyIntervalMs`. A NOTIFY
 * inside every message's transaction would serialize all their commits on
 * PostgreSQL's notification lock. An instance that dies between commit and
 * announcement costs other instances at most one poll interval. Without a
 * LISTEN connection (behind a pooler that has no sessions), polling is how
 * other instances' messages arrive.
 *
 * Ordering: event ids are drawn at insert but transactions commit in any
 * order, so id 9 may become visible after id 10. The hub keeps a watermark
 * per range of ids (see watermark.ts), at or below which every id has been
 * delivered or given up on, and only advances it over contiguous ids; a
 * missing id waits for its commit, and is skipped once it is older than
 * `gapTimeoutMs` (its transaction rolled back). Streams resume from any position the watermark passed
 * without gaps or duplicates, and see each conversation's events in order.
 *
 * With no stream open, nobody needs the events at once: new ones are read
 * (ids only) at most every `idleReadIntervalMs`, not after every write, and
 * the first stream to open catches the watermark up before it starts.
 *
 * What is read: an announcement or a notification names the ranges that
 * moved (ids of each), and the batch it brings reads only those ranges (on
 * Citus each range's read is a query of every shard). The poll, listening
 * again and a stream's catching up read every range, and so find what no
 * announcement named (an instance died before announcing).
 *
 * Events that are not messages (a member joined or left, a member's new
 * device, a request for a fresh GroupInfo) are rows of convo_event, stored by
 * the write that makes them, in its transaction (services/convoEvents.ts).
 * Their ids come from the same sequence as the messages' event ids, so they
 * are positions of the same log: the hub reads both tables above the
 * watermark and moves it over ids of either (a missing id may be either's),
 * and a cursor is exact across both kinds, on every instance, through the
 * same announcements, notifications and polls. Within a conversation, on
 * several ranges of ids, such an event follows the message before it
 * (after_seq). Who sees an event is decided per event (eventLog.visibleTo),
 * by the members of its conversation read with the batch (eventLog.readEvents):
 * a conversation joined after a stream opened is in it from its joining event
 * on, and one left is out of it after its leaving event, which the member who
 * left still gets.
 *
 * Typing is not an event of the log: a member's typing reaches the streams of
 * the conversation's other current members on this instance, and the other
 * instances through a notification of its own (none without LISTEN); it is
 * lost when nobody hears it, and never replayed.
 */
export class EventHub {
  private readonly subscribers = new Set<Subscriber>()
  /** Streams of one conversation, by conversation; streams of all of their member's conversations. */
  private readonly byConvo = new Map<string, Set<Subscriber>>()
  private readonly everywhere = new Set<Subscriber>()
  /** Open streams by caller and transport: what a new one is counted against, without a walk over every stream. */
  private readonly streamCounts = new Map<string, number>()
  private listener: Listener | undefined
  private pollTimer: NodeJS.Timeout | undefined
  private pumping: Promise<void> | undefined
  private pumpAgain = false
  /** Ranges with events above the watermark that no batch has read yet: what the next batch reads. */
  private readonly moved = new Set<number>()
  /** The next batch reads every range, not only those that moved. */
  private readAll = false
  private stopped = false
  /** In each range, every event id up to its watermark has been delivered or given up on. */
  readonly #watermark: Watermark = new Map([[0, 0]])
  /** Missing event ids, by when they were first found missing. */
  private readonly gaps = new Map<number, number>()
  private readonly gapTimeoutMs: number
  private readonly batchSize: number
  private readonly notifyIntervalMs: number
  private readonly idleReadIntervalMs: number
  private idleRead: NodeJS.Timeout | undefined
  private catchingUp: Promise<void> | undefined
  /** The highest event ids (per range) announced by this instance, and whether some are not notified yet. */
  private readonly announced: Watermark = new Map()
  private unnotified = false
  private notifying: Promise<void> | undefined
  private readonly scope = new AsyncResource('EventHub')
  /** Tells this instance's typing notifications from other instances'. */
  private readonly instance = randomUUID()
  private typingFanOut = Promise.resolve()

  constructor(private readonly opts: EventHubOptions) {
    this.gapTimeoutMs = opts.gapTimeoutMs ?? 10_000
    this.batchSize = opts.batchSize ?? 500
    this.notifyIntervalMs = opts.notifyIntervalMs ?? 5
    this.idleReadIntervalMs = opts.idleReadIntervalMs ?? 100
  }

  /** Where a stream stands that has been given everything so far (a copy): where new streams start, and replay ends. */
  get watermark(): Watermark {
    return new Map(this.#watermark)
  }

  /** Streams open for `did` on this instance, of one transport. */
  streamsOf(did: string, transport: Subscriber['transport']): number {
    return this.streamCounts.get(streamKey(did, transport)) ?? 0
  }

  async start(): Promise<void> {
    // Each range's highest id, from the top down: one index probe per range.
    for (let top = await highestEventId(this.opts.db, Number.MAX_SAFE_INTEGER); top !== undefined;) {
      this.#watermark.set(rangeOf(top), top)
      top = rangeOf(top) > 0 ? await highestEventId(this.opts.db, rangeStart(rangeOf(top))) : undefined
    }
    if (this.opts.listen) {
      this.listener = new Listener({
        connection: this.opts.listen,
        channels: [MESSAGE_CHANNEL, TYPING_CHANNEL],
        log: this.opts.log,
        onNotification: (channel, payload) => {
          if (channel === TYPING_CHANNEL) return this.heardTyping(payload)
          // A cursor of the ids the other instance announced, the highest of each range.
          this.newEvents(parseCursor(payload)?.values())
        },
        // Anything committed while not listening is caught up from the database.
        onListening: () => this.readEveryRange(),
      })
      await this.listener.start()
    }
    this.pollTimer = setInterval(() => this.readEveryRange(), this.opts.pollIntervalMs ?? 5_000)
    this.pollTimer.unref()
  }

  /**
   * A current member of `convoId` is typing (the caller checked): tell the
   * streams of the other members here, and the other instances.
   */
  typing(event: Typing): void {
    this.scope.runInAsyncScope(() => {
      this.fanOutTyping(event)
      if (!this.listener) return
      const payload = JSON.stringify({ ...event, from: this.instance })
      sql`SELECT pg_notify(${TYPING_CHANNEL}, ${payload})`
        .execute(this.opts.db)
        .catch((err: unknown) => this.opts.log.warn({ err }, 'typing notification failed'))
    })
  }

  private heardTyping(payload: string): void {
    let heard: unknown
    try {
      heard = JSON.parse(payload)
    } catch {
      return
    }
    if (typeof heard !== 'object' || heard === null) return
    const { convoId, did, isTyping, from } = heard as Record<string, unknown>
    if (from === this.instance || typeof convoId !== 'string' || typeof did !== 'string') return
    if (typeof isTyping !== 'boolean') return
    this.fanOutTyping({ convoId, did, isTyping })
  }

  /** Typing reaches the members' streams in the order this instance heard it. */
  private fanOutTyping(event: Typing): void {
    const listening = [...this.subscribers].filter(
      (s) => s.typing && s.did !== event.did && (s.convoId === undefined || s.convoId === event.convoId),
    )
    if (listening.length === 0) return
    this.typingFanOut = this.typingFanOut
      .then(async () => {
        const joined = await memberships(this.opts.db, [...new Set(listening.map((s) => s.did))], [event.convoId])
        const members = joined.get(event.convoId)
        for (const s of listening) if (members?.has(s.did)) s.typing?.(event)
      })
      .catch((err: unknown) => this.opts.log.warn({ err }, 'typing fan-out failed'))
  }

  /** An event with this id (a message, or another event of a conversation) was committed by this instance: tell every instance. */
  announce(eventId: number): void {
    advance(this.announced, eventId)
    // The hub's own work, not the announcing request's: it outlives the
    // request and serves everyone (logs and traces should say so).
    this.scope.runInAsyncScope(() => {
      this.newEvents([eventId])
      if (!this.listener) return
      this.unnotified = true
      this.notifying ??= this.notifyAll().finally(() => {
        this.notifying = undefined
      })
    })
  }

  private async notifyAll(): Promise<void> {
    while (this.unnotified) {
      this.unnotified = false
      const announced = encodeCursor(this.announced)
      try {
        await sql`SELECT pg_notify(${MESSAGE_CHANNEL}, ${announced})`.execute(this.opts.db)
      } catch (err) {
        // Other instances find these messages on their next poll.
        this.opts.log.warn({ err, announced }, 'event notification failed')
      }
      await sleep(this.notifyIntervalMs, undefined, { ref: false })
    }
  }

  /** Waits for the last announcement to be sent: writes finishing during shutdown still reach other instances. */
  async flush(): Promise<void> {
    await this.notifying
  }

  /**
   * New events were committed, up to these ids in their ranges (none named:
   * anywhere): read them now for the open streams, or soon when none is open.
   * Ids the watermark covers are old news (this instance's own announcements
   * come back as notifications).
   */
  private newEvents(ids: Iterable<number> | undefined): void {
    if (ids === undefined) this.readAll = true
    else {
      const news = [...ids].filter((id) => !covers(this.#watermark, id))
      if (news.length === 0) return
      for (const id of news) this.moved.add(rangeOf(id))
    }
    if (this.subscribers.size > 0) return this.schedulePump()
    this.idleRead ??= setTimeout(() => {
      this.idleRead = undefined
      this.schedulePump()
    }, this.idleReadIntervalMs).unref()
  }

  /**
   * Resolves once the watermark covers every event committed before the
   * call: where a stream opened after it, the first one, starts (the
   * watermark may trail while no stream is open).
   */
  async caughtUp(): Promise<void> {
    // While other streams were open, every write was read at once.
    if (this.subscribers.size > 1 && !this.catchingUp) return
    this.catchingUp ??= (async () => {
      // A read under way may have begun before the call: the one after it counts.
      await this.pumping
      this.readEveryRange()
      await this.pumping
    })().finally(() => {
      this.catchingUp = undefined
    })
    await this.catchingUp
  }

  subscribe(subscriber: Subscriber): () => void {
    this.subscribers.add(subscriber)
    const { convoId } = subscriber
    const index = convoId === undefined ? this.everywhere : (this.byConvo.get(convoId) ?? new Set<Subscriber>())
    if (convoId !== undefined) this.byConvo.set(convoId, index)
    index.add(subscriber)
    const counted = streamKey(subscriber.did, subscriber.transport)
    this.streamCounts.set(counted, (this.streamCounts.get(counted) ?? 0) + 1)
    return () => {
      // Its reader ending and its owner closing it may both unsubscribe: counted once.
      if (!this.subscribers.delete(subscriber)) return
      const left = (this.streamCounts.get(counted) ?? 1) - 1
      if (left > 0) this.streamCounts.set(counted, left)
      else this.streamCounts.delete(counted)
      index.delete(subscriber)
      if (convoId !== undefined && index.size === 0 && this.byConvo.get(convoId) === index) this.byConvo.delete(convoId)
    }
  }

  /** Ends the streams of an account taken down (new ones are refused where it authenticates). */
  endStreamsOf(did: string): void {
    for (const s of this.subscribers) {
      if (s.did === did)
        s.close(`The account ${did} has been taken down by the operator of this server`, 'AccountTakedown')
    }
  }

  /** Ends every stream (shutdown) and stops listening. */
  async stop(): Promise<void> {
    this.stopped = true
    clearInterval(this.pollTimer)
    clearTimeout(this.idleRead)
    for (const s of this.subscribers) s.close('server shutting down')
    this.subscribers.clear()
    this.streamCounts.clear()
    await this.listener?.stop()
    await this.pumping
  }

  /** Reads every range now: finds what no announcement named. */
  private readEveryRange(): void {
    this.readAll = true
    this.schedulePump()
  }

  private schedulePump(): void {
    if (this.stopped) return
    if (this.pumping) {
      this.pumpAgain = true
      return
    }
    // This read finds all that an idle read waiting to run would.
    clearTimeout(this.idleRead)
    this.idleRead = undefined
    this.pumping = this.pump()
      .catch((err: unknown) => this.opts.log.warn({ err }, 'event fan-out failed; will retry'))
      .finally(() => {
        this.pumping = undefined
        if (this.pumpAgain) {
          this.pumpAgain = false
          this.schedulePump()
        }
      })
  }

  /**
   * The ranges the next batch reads, forgotten as moved: every known range
   * when asked to, else those that moved (one not known yet is known from
   * then on, from its start).
   */
  private rangesToRead(all: boolean): number[] {
    for (const range of this.moved) if (!this.#watermark.has(range)) this.#watermark.set(range, rangeStart(range))
    const ranges = [...(all ? this.#watermark.keys() : this.moved)].sort((a, b) => a - b)
    this.readAll = false
    this.moved.clear()
    return ranges
  }

  /**
   * A batch above the watermark, a segment per range: each range that moved
   * up to its end; or, reading every range, each one up to the next known
   * range, the last one unbounded (so a range seen for the first time is
   * found). Whole events, with the current members of their conversations,
   * when a stream is open; else only their ids, which is all that moves the
   * watermark (no message is read back for nobody).
   */
  private async nextBatch(ranges: number[], all: boolean): Promise<Batch> {
    const whole = this.subscribers.size > 0
    const opts = { limit: this.batchSize, withPrev: this.#watermark.size > 1 }
    const segments = ranges.map((range, i) => {
      const next = all ? ranges[i + 1] : range + 1
      return {
        after: this.#watermark.get(range) as number,
        upTo: next === undefined ? Number.MAX_SAFE_INTEGER : rangeStart(next),
      }
    })
    this.opts.reads?.inc({ kind: whole ? 'messages' : 'ids' }, segments.length)
    if (!whole) {
      return { pages: await Promise.all(segments.map((segment) => readEventRefs(this.opts.db, segment, opts))) }
    }
    const read = await Promise.all(
      segments.map((segment) =>
        readEvents(this.opts.db, segment, { ...opts, read: this.opts.batchRead ?? 'together' }),
      ),
    )
    const members: Memberships = new Map()
    for (const { members: ofRange } of read) for (const [convoId, dids] of ofRange) members.set(convoId, dids)
    return { pages: read.map(({ page }) => page), members }
  }

  private async pump(): Promise<void> {
    for (;;) {
      const all = this.readAll
      const ranges = this.rangesToRead(all)
      if (ranges.length === 0) return
      // What this batch leaves of a range is read again by the next.
      const readAgain = (range: number) => (all ? (this.readAll = true) : this.moved.add(range))
      let batch
      try {
        batch = await this.nextBatch(ranges, all)
      } catch (err) {
        ranges.forEach(readAgain)
        throw err
      }
      const { pages, members } = batch
      // A stream opened while only ids were read starts from the watermark: it needs these messages.
      if (!members && this.subscribers.size > 0) {
        ranges.forEach(readAgain)
        continue
      }
      const rows = pages.flatMap((page) => page.rows)
      // A range seen for the first time: read again with it known, and events ordered across ranges.
      const fresh = rows.filter((row) => !this.#watermark.has(rangeOf(row.event_id)))
      if (fresh.length > 0) {
        for (const row of fresh) this.#watermark.set(rangeOf(row.event_id), rangeStart(rangeOf(row.event_id)))
        this.readAll = true
        continue
      }
      const ready = takeInOrder(rows, this.#watermark, {
        skipMissing: (id) => this.gapExpired(id),
        pending: (prevId) => !covers(this.#watermark, prevId),
      })
      for (const id of this.gaps.keys()) if (covers(this.#watermark, id)) this.gaps.delete(id)
      // A full page may have more behind it.
      pages.forEach((page, i) => page.full && readAgain(ranges[i] as number))
      // An event left waits for a missing id of its range, or for its conversation's previous event in another range.
      const left = rows.filter((row) => !covers(this.#watermark, row.event_id))
      const awaited = left.flatMap((row) =>
        row.prev_event_id != null && !covers(this.#watermark, row.prev_event_id) ? [rangeOf(row.prev_event_id)] : [],
      )
      for (const range of [...left.map((row) => rangeOf(row.event_id)), ...awaited]) this.moved.add(range)
      if (members && ready.length > 0) this.fanOut(ready as LogEvent[], members)
      // More behind a full page, unless nothing moved; or an awaited event in a range this batch did not read.
      if (pages.some((page) => page.full) && ready.length > 0) continue
      if (awaited.some((range) => !ranges.includes(range))) continue
      // Stopped at a gap: look again soon, without waiting for a notification.
      if (left.length > 0) setTimeout(() => this.schedulePump(), 50).unref()
      return
    }
  }

  /** Whether a missing id has been missing long enough to be a rollback. */
  private gapExpired(id: number): boolean {
    const since = this.gaps.get(id)
    if (since === undefined) this.gaps.set(id, Date.now())
    if (since === undefined || Date.now() - since < this.gapTimeoutMs) return false
    this.opts.log.warn({ eventId: id }, 'event id never committed; skipping it')
    return true
  }

  /**
   * Each event to the streams that may see it: those of its conversation and
   * those of all their member's conversations, by the memberships read with
   * the events (streams of other conversations are not looked at).
   */
  private fanOut(events: LogEvent[], joined: Memberships): void {
    const byConvo = new Map<string, LogEvent[]>()
    for (const e of events) {
      const ofConvo = byConvo.get(e.convo_id)
      if (ofConvo) ofConvo.push(e)
      else byConvo.set(e.convo_id, [e])
    }
    for (const subscriber of this.everywhere) {
      const { did } = subscriber
      const visible = events.filter((e) => visibleTo(e, did, joined.get(e.convo_id)?.get(did)))
      if (visible.length) subscriber.deliver(visible)
    }
    // A stream is of one conversation or of all: no stream is in two of these sets.
    for (const [convoId, ofConvo] of byConvo) {
      const members = joined.get(convoId)
      for (const subscriber of this.byConvo.get(convoId) ?? []) {
        const visible = visibleOf(ofConvo, subscriber.did, members?.get(subscriber.did))
        if (visible.length) subscriber.deliver(visible)
      }
    }
  }
}
