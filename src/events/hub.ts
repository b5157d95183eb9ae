import type { FastifyBaseLogger } from 'fastify'
import { sql, type SelectQueryBuilder } from 'kysely'
import { AsyncResource } from 'node:async_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import pg from 'pg'
import type { Db } from '../db/index.js'
import { executePrepared } from '../db/prepared.js'
import type { DatabaseSchema, Message } from '../db/schema.js'

export const MESSAGE_CHANNEL = 'catbird_message'

/** One open event stream: who it is for and where its events go. */
export interface Subscriber {
  did: string
  convoId?: string
  deliver(messages: Message[]): void
  close(reason: string): void
}

export interface EventHubOptions {
  db: Db
  /** Connection settings for the dedicated LISTEN connection. */
  connection: pg.ClientConfig
  log: FastifyBaseLogger
  /** A missing event id older than this is a rolled-back insert, not a late commit. */
  gapTimeoutMs?: number
  /** Safety net: read new events this often even without notifications. */
  pollIntervalMs?: number
  /** Least time between two notifications this instance sends; announcements in between share one. */
  notifyIntervalMs?: number
  batchSize?: number
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
 * announcement costs other instances at most one poll interval.
 *
 * Ordering: event ids are assigned at insert but transactions commit in any
 * order, so id 9 may become visible after id 10. The hub keeps a watermark
 * below which every id is settled and only advances it over contiguous ids;
 * a missing id waits for its commit, and is skipped once it is older than
 * `gapTimeoutMs` (its transaction rolled back). Streams resume from any
 * settled position without gaps or duplicates.
 */
export class EventHub {
  private readonly subscribers = new Set<Subscriber>()
  private listener: pg.Client | undefined
  private pollTimer: NodeJS.Timeout | undefined
  private reconnectTimer: NodeJS.Timeout | undefined
  private pumping: Promise<void> | undefined
  private pumpAgain = false
  private stopped = false
  /** Every event id <= watermark has been delivered or given up on. */
  private watermark = 0
  private gapSince: { id: number; at: number } | undefined
  private readonly gapTimeoutMs: number
  private readonly batchSize: number
  private readonly notifyIntervalMs: number
  /** The highest event id announced by this instance, and the highest notified. */
  private announced = 0
  private notified = 0
  private notifying: Promise<void> | undefined
  private readonly scope = new AsyncResource('EventHub')

  constructor(private readonly opts: EventHubOptions) {
    this.gapTimeoutMs = opts.gapTimeoutMs ?? 10_000
    this.batchSize = opts.batchSize ?? 500
    this.notifyIntervalMs = opts.notifyIntervalMs ?? 5
  }

  /** The position every event up to which has been settled; a resume replays to here. */
  get settled(): number {
    return this.watermark
  }

  streamsOf(did: string): number {
    let n = 0
    for (const s of this.subscribers) if (s.did === did) n++
    return n
  }

  async start(): Promise<void> {
    const { rows } = await sql<{ max: number | null }>`SELECT max(event_id) AS max FROM message`.execute(this.opts.db)
    this.watermark = Number(rows[0]?.max ?? 0)
    await this.listen()
    this.pollTimer = setInterval(() => this.schedulePump(), this.opts.pollIntervalMs ?? 5_000)
    this.pollTimer.unref()
  }

  private async listen(): Promise<void> {
    const client = new pg.Client(this.opts.connection)
    client.on('notification', ({ payload }) => {
      // Every id up to the announced one may be settled already (this instance's own announcements are).
      if (!(Number(payload) <= this.watermark)) this.schedulePump()
    })
    client.on('error', (err) => {
      this.opts.log.warn({ err }, 'event listener connection lost; reconnecting')
      this.reconnect(client)
    })
    client.on('end', () => this.reconnect(client))
    await client.connect()
    await client.query(`LISTEN ${MESSAGE_CHANNEL}`)
    this.listener = client
    // Anything committed while not listening is caught up from the database.
    this.schedulePump()
  }

  private reconnect(dead: pg.Client): void {
    if (this.stopped || this.listener !== dead || this.reconnectTimer) return
    this.listener = undefined
    dead.removeAllListeners('end')
    void dead.end().catch(() => {})
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined
      this.listen().catch((err: unknown) => {
        this.opts.log.warn({ err }, 'event listener reconnect failed')
        this.listener = dead
        this.reconnect(dead)
      })
    }, 1_000)
    this.reconnectTimer.unref()
  }

  /** Messages up to `eventId` were committed by this instance: tell every instance. */
  announce(eventId: number): void {
    this.announced = Math.max(this.announced, eventId)
    // The hub's own work, not the announcing request's: it outlives the
    // request and serves everyone (logs and traces should say so).
    this.scope.runInAsyncScope(() => {
      this.schedulePump()
      this.notifying ??= this.notifyAll().finally(() => {
        this.notifying = undefined
      })
    })
  }

  private async notifyAll(): Promise<void> {
    while (this.announced > this.notified) {
      const eventId = this.announced
      try {
        await sql`SELECT pg_notify(${MESSAGE_CHANNEL}, ${String(eventId)})`.execute(this.opts.db)
      } catch (err) {
        // Other instances find these messages on their next poll.
        this.opts.log.warn({ err, eventId }, 'event notification failed')
      }
      this.notified = eventId
      await sleep(this.notifyIntervalMs, undefined, { ref: false })
    }
  }

  /** Waits for the last announcement to be sent: writes finishing during shutdown still reach other instances. */
  async flush(): Promise<void> {
    await this.notifying
  }

  subscribe(subscriber: Subscriber): () => void {
    this.subscribers.add(subscriber)
    return () => this.subscribers.delete(subscriber)
  }

  /** Ends every stream (shutdown) and stops listening. */
  async stop(): Promise<void> {
    this.stopped = true
    clearInterval(this.pollTimer)
    clearTimeout(this.reconnectTimer)
    for (const s of this.subscribers) s.close('server shutting down')
    this.subscribers.clear()
    const listener = this.listener
    this.listener = undefined
    listener?.removeAllListeners('end')
    await listener?.end().catch(() => {})
    await this.pumping
  }

  private schedulePump(): void {
    if (this.stopped) return
    if (this.pumping) {
      this.pumpAgain = true
      return
    }
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
   * The next batch after the watermark: whole messages when a stream is
   * open; else only their ids, which is all that moves the settled position
   * (no message is read back for nobody).
   */
  private async nextBatch(): Promise<{ rows: Array<Pick<Message, 'event_id'>>; whole: boolean }> {
    const after = (query: SelectQueryBuilder<DatabaseSchema, 'message', object>) =>
      query.where('event_id', '>', this.watermark).orderBy('event_id').limit(this.batchSize)
    if (this.subscribers.size > 0) return { rows: await after(this.opts.db.selectFrom('message')).selectAll().execute(), whole: true }
    const ids = after(this.opts.db.selectFrom('message')).select('event_id')
    return { rows: (await executePrepared(this.opts.db, 'next_event_ids', ids)).rows, whole: false }
  }

  private async pump(): Promise<void> {
    for (;;) {
      const { rows, whole } = await this.nextBatch()
      // A stream opened while only ids were read starts from the settled position: it needs these messages.
      if (!whole && this.subscribers.size > 0) continue
      const ready: Array<Pick<Message, 'event_id'>> = []
      let next = this.watermark + 1
      for (const row of rows) {
        if (row.event_id !== next && !this.gapExpired(next)) break
        ready.push(row)
        next = row.event_id + 1
      }
      if (ready.length === 0) return
      this.watermark = (ready[ready.length - 1] as Message).event_id
      if (whole) await this.fanOut(ready as Message[])
      if (ready.length < rows.length || rows.length < this.batchSize) {
        // Stopped at a gap: look again soon, without waiting for a notification.
        if (ready.length < rows.length) setTimeout(() => this.schedulePump(), 50).unref()
        return
      }
    }
  }

  /** Whether a missing id has been missing long enough to be a rollback. */
  private gapExpired(id: number): boolean {
    const now = Date.now()
    if (this.gapSince?.id !== id) this.gapSince = { id, at: now }
    if (now - this.gapSince.at < this.gapTimeoutMs) return false
    this.opts.log.warn({ eventId: id }, 'event id never committed; skipping it')
    return true
  }

  private async fanOut(messages: Message[]): Promise<void> {
    if (this.subscribers.size === 0) return
    const memberships = await visibleTo(
      this.opts.db,
      [...new Set([...this.subscribers].map((s) => s.did))],
      [...new Set(messages.map((m) => m.convo_id))],
    )
    for (const subscriber of this.subscribers) {
      const visible = messages.filter(
        (m) =>
          (subscriber.convoId === undefined || subscriber.convoId === m.convo_id) &&
          m.seq > (memberships.get(`${m.convo_id} ${subscriber.did}`) ?? Infinity),
      )
      if (visible.length) subscriber.deliver(visible)
    }
  }
}

/** (convo, did) -> joined_seq, for the current members among the given ones. */
async function visibleTo(db: Db, dids: string[], convoIds: string[]): Promise<Map<string, number>> {
  const rows = await db
    .selectFrom('member')
    .select(['convo_id', 'did', 'joined_seq'])
    .where('convo_id', 'in', convoIds)
    .where('did', 'in', dids)
    .where('left_at', 'is', null)
    .execute()
  return new Map(rows.map((r) => [`${r.convo_id} ${r.did}`, r.joined_seq]))
}

/**
 * Messages a member may see with event ids in (after, upTo], oldest first:
 * the replay part of a resumed stream.
 */
export async function replayMessages(
  db: Db,
  args: { did: string; convoId?: string; after: number; upTo: number; limit: number },
): Promise<Message[]> {
  return db
    .selectFrom('message')
    .innerJoin('member', (join) =>
      join
        .onRef('member.convo_id', '=', 'message.convo_id')
        .on('member.did', '=', args.did)
        .on('member.left_at', 'is', null),
    )
    .selectAll('message')
    .whereRef('message.seq', '>', 'member.joined_seq')
    .where('message.event_id', '>', args.after)
    .where('message.event_id', '<=', args.upTo)
    .$if(args.convoId !== undefined, (qb) => qb.where('message.convo_id', '=', args.convoId as string))
    .orderBy('message.event_id')
    .limit(args.limit)
    .execute()
}
