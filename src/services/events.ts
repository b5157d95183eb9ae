import { sql, type ExpressionBuilder } from 'kysely'
import type { Db } from '../db/index.js'
import { executePrepared } from '../db/prepared.js'
import type { DatabaseSchema, Message } from '../db/schema.js'
import { rangeOf, rangeStart, type EventRef, type Watermark } from '../events/watermark.js'

/**
 * The reads behind event streams (see src/events/): new events in a segment
 * of ids, what one member may see of them, and where each range of ids stands.
 */

/** A message, with its conversation's previous event's id when that was asked for. */
export type MessageEvent = Message & EventRef

/** Ids in (after, upTo]. */
export interface Segment {
  after: number
  upTo: number
}

/**
 * The event id of the message before this one in its conversation (an index
 * lookup on (convo_id, seq)), or null; with `joinedSeq`, only one its
 * member may see.
 */
const prevEventId = (eb: ExpressionBuilder<DatabaseSchema, 'message'>, joinedSeq?: number | 'member') =>
  eb
    .selectFrom('message as prev')
    .select('prev.event_id')
    .whereRef('prev.convo_id', '=', 'message.convo_id')
    .where(sql<boolean>`prev.seq = message.seq - 1`)
    .$if(joinedSeq === 'member', (qb) => qb.where(sql<boolean>`prev.seq > member.joined_seq`))
    .as('prev_event_id')

function segmentOf(db: Db, segment: Segment, limit: number) {
  return db
    .selectFrom('message')
    .where('message.event_id', '>', segment.after)
    .where('message.event_id', '<=', segment.upTo)
    .orderBy('message.event_id')
    .limit(limit)
}

/**
 * The first `limit` messages of a segment, in id order; `withPrev` adds each
 * one's previous event in its conversation, which orders events drawn from
 * several ranges.
 */
export async function readEvents(db: Db, segment: Segment, opts: { limit: number; withPrev: boolean }): Promise<MessageEvent[]> {
  return segmentOf(db, segment, opts.limit)
    .selectAll('message')
    .$if(opts.withPrev, (qb) => qb.select((eb) => prevEventId(eb)))
    .execute()
}

/** As readEvents, ids only: all that moves a watermark when no stream reads the messages. */
export async function readEventRefs(db: Db, segment: Segment, opts: { limit: number; withPrev: boolean }): Promise<EventRef[]> {
  const query = segmentOf(db, segment, opts.limit)
    .select('message.event_id')
    .$if(opts.withPrev, (qb) => qb.select((eb) => prevEventId(eb)))
  return (await executePrepared(db, opts.withPrev ? 'next_event_refs' : 'next_event_ids', query)).rows
}

/**
 * Where each range of event ids stands: its highest id, for every range that
 * has one (an index scan down from the top, one step per range).
 */
export async function rangeTops(db: Db): Promise<Watermark> {
  const tops: Watermark = new Map()
  for (let below = Number.MAX_SAFE_INTEGER; below > 0; ) {
    const row = await db
      .selectFrom('message')
      .select('event_id')
      .where('event_id', '<=', below)
      .orderBy('event_id', 'desc')
      .limit(1)
      .executeTakeFirst()
    if (!row) break
    tops.set(rangeOf(row.event_id), row.event_id)
    below = rangeStart(rangeOf(row.event_id))
  }
  return tops
}

/**
 * The oldest event still kept in each range `from` names, when it is more
 * than one past `from`'s watermark there: events after the cursor are gone.
 */
export async function cursorTooOld(db: Db, from: Watermark): Promise<boolean> {
  for (const [range, id] of from) {
    if (id <= rangeStart(range)) continue
    const oldest = await db
      .selectFrom('message')
      .select('event_id')
      .where('event_id', '>', rangeStart(range))
      .where('event_id', '<=', rangeStart(range + 1))
      .orderBy('event_id')
      .limit(1)
      .executeTakeFirst()
    if (oldest && id < oldest.event_id - 1) return true
  }
  return false
}

/** (convo, did) -> joined_seq, for the current members among the given ones. */
export async function memberships(db: Db, dids: string[], convoIds: string[]): Promise<Map<string, number>> {
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
 * Messages a member may see that are after `from` and up to `upTo`, at most
 * `limit` per range, each range's in id order: the replay part of a resumed
 * stream. With several ranges each carries its previous event's id, if
 * the member may see it.
 */
export async function replayEvents(
  db: Db,
  args: { did: string; convoId?: string | undefined; from: Watermark; upTo: Watermark; limit: number },
): Promise<{ events: MessageEvent[]; full: boolean }> {
  const segments = [...args.upTo].flatMap(([range, upTo]) => {
    const after = args.from.get(range) ?? rangeStart(range)
    return upTo > after ? [{ after, upTo }] : []
  })
  const pages = await Promise.all(
    segments.map((segment) =>
      db
        .selectFrom('message')
        .innerJoin('member', (join) =>
          join
            .onRef('member.convo_id', '=', 'message.convo_id')
            .on('member.did', '=', args.did)
            .on('member.left_at', 'is', null),
        )
        .selectAll('message')
        .$if(segments.length > 1, (qb) => qb.select((eb) => prevEventId(eb, 'member')))
        .whereRef('message.seq', '>', 'member.joined_seq')
        .where('message.event_id', '>', segment.after)
        .where('message.event_id', '<=', segment.upTo)
        .$if(args.convoId !== undefined, (qb) => qb.where('message.convo_id', '=', args.convoId as string))
        .orderBy('message.event_id')
        .limit(args.limit)
        .execute(),
    ),
  )
  return { events: pages.flat(), full: pages.some((page) => page.length === args.limit) }
}
