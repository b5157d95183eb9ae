/**
 * The event log: the reads behind event streams (src/events/). Every stored
 * message is an event, its id its position; these read new events in a
 * segment of ids, what one member may see of them, and where each range of
 * ids stands.
 */
import { sql, type ExpressionBuilder } from 'kysely'
import type { DatabaseSchema, Db, Message } from '../db/schema.js'
import { execute, statement } from '../db/statement.js'

/** What orders events: its id and, when asked for, its conversation's previous event's id (seq - 1). */
export interface EventRef {
  event_id: number
  prev_event_id?: number | null
}

/** A message, with its conversation's previous event's id when that was asked for. */
export type MessageEvent = Message & EventRef

/** Ids in (after, upTo]. */
export interface Segment {
  after: number
  upTo: number
}

/**
 * The event id of the message before this one in its conversation (an index
 * lookup on (convo_id, seq)), or null; `ofMember`: only one the joined
 * member may see.
 */
const prevEventId = (eb: ExpressionBuilder<DatabaseSchema, 'message'>, ofMember = false) =>
  eb
    .selectFrom('message as prev')
    .select('prev.event_id')
    .whereRef('prev.convo_id', '=', 'message.convo_id')
    .where(sql<boolean>`prev.seq = message.seq - 1`)
    .$if(ofMember, (qb) => qb.where(sql<boolean>`prev.seq > member.joined_seq`))
    .as('prev_event_id')

function segmentOf(db: Db, segment: Segment, limit: number) {
  return db
    .selectFrom('message')
    .where('message.event_id', '>', segment.after)
    .where('message.event_id', '<=', segment.upTo)
    .orderBy('message.event_id')
    .limit(limit)
}

/** A page of event ids (with each one's previous in its conversation, or not): read after every batch of writes. */
const eventRefPage = (withPrev: boolean) =>
  statement(withPrev ? 'next_event_refs' : 'next_event_ids', (v: Segment & { limit: number }, db) =>
    segmentOf(db, v, v.limit)
      .select('message.event_id')
      .$if(withPrev, (qb) => qb.select((eb) => prevEventId(eb))),
  )
const eventRefPages = { withPrev: eventRefPage(true), withoutPrev: eventRefPage(false) }

/**
 * The first `limit` messages of a segment, in id order; `withPrev` adds each
 * one's previous event in its conversation, which orders events drawn from
 * several ranges.
 */
export async function readEvents(
  db: Db,
  segment: Segment,
  opts: { limit: number; withPrev: boolean },
): Promise<MessageEvent[]> {
  return segmentOf(db, segment, opts.limit)
    .selectAll('message')
    .$if(opts.withPrev, (qb) => qb.select((eb) => prevEventId(eb)))
    .execute()
}

/** As readEvents, ids only: all that moves a watermark when no stream reads the messages. */
export async function readEventRefs(
  db: Db,
  segment: Segment,
  opts: { limit: number; withPrev: boolean },
): Promise<EventRef[]> {
  const page = opts.withPrev ? eventRefPages.withPrev : eventRefPages.withoutPrev
  return (await execute(db, page, { ...segment, limit: opts.limit })).rows
}

/** The highest event id at or below `below`, if any (an index scan down from it). */
export async function highestEventId(db: Db, below: number): Promise<number | undefined> {
  const row = await db
    .selectFrom('message')
    .select('event_id')
    .where('event_id', '<=', below)
    .orderBy('event_id', 'desc')
    .limit(1)
    .executeTakeFirst()
  return row?.event_id
}

/** The lowest event id of a segment, if any. */
export async function lowestEventId(db: Db, segment: Segment): Promise<number | undefined> {
  const row = await db
    .selectFrom('message')
    .select('event_id')
    .where('event_id', '>', segment.after)
    .where('event_id', '<=', segment.upTo)
    .orderBy('event_id')
    .limit(1)
    .executeTakeFirst()
  return row?.event_id
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
 * Messages a member may see in some segments, at most `limit` per segment,
 * each segment's in id order: the replay part of a resumed stream.
 * `withPrev` adds each one's previous event in its conversation, when the
 * member may see that one.
 */
export async function replayEvents(
  db: Db,
  args: { did: string; convoId?: string | undefined; segments: Segment[]; withPrev: boolean; limit: number },
): Promise<{ events: MessageEvent[]; full: boolean }> {
  const pages = await Promise.all(
    args.segments.map((segment) =>
      db
        .selectFrom('message')
        .innerJoin('member', (join) =>
          join
            .onRef('member.convo_id', '=', 'message.convo_id')
            .on('member.did', '=', args.did)
            .on('member.left_at', 'is', null),
        )
        .selectAll('message')
        .$if(args.withPrev, (qb) => qb.select((eb) => prevEventId(eb, true)))
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
