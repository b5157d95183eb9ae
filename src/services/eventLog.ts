/**
 * The event log: the reads behind event streams (src/events/). The log is two
 * tables whose rows draw their ids from one sequence: every stored message is
 * an event, and so is every row of convo_event (a member joined or left, a
 * new device, a GroupInfo request; see convoEvents.ts). An event's id is its
 * position; these read new events in a segment of ids from both tables, what
 * one member may see of them, and where each range of ids stands.
 */
import { sql, type ExpressionBuilder } from 'kysely'
import { byteaFromText } from '../db/index.js'
import type { ConvoEvent, DatabaseSchema, Db, Message } from '../db/schema.js'
import { execute, statement, type Statement } from '../db/statement.js'

/** What orders events: its id and, when asked for, its conversation's previous message's event id. */
export interface EventRef {
  event_id: number
  prev_event_id?: number | null
}

/** A message, with its conversation's previous event's id when that was asked for. */
export type MessageEvent = Message & EventRef

/** An event of a conversation that is not a message, ordered after the message before it. */
export type ConvoLogEvent = ConvoEvent & EventRef

/** One event of the log. */
export type LogEvent = MessageEvent | ConvoLogEvent

export const isMessage = (event: LogEvent): event is MessageEvent => !('kind' in event)

/** Ids in (after, upTo]. */
export interface Segment {
  after: number
  upTo: number
}

/** Rows of a segment in id order, and whether the read stopped at its limit (more may follow). */
export interface Page<T> {
  rows: T[]
  full: boolean
}

/**
 * Whether `did`, a current member since `joinedSeq` (undefined: not a
 * current member), may see an event: a message sent after it joined; another
 * event that came after the message it joined with; and the member's own
 * joining or leaving, which it sees even after it left (its last event of
 * that conversation).
 */
export function visibleTo(event: LogEvent, did: string, joinedSeq: number | undefined): boolean {
  if (isMessage(event)) return joinedSeq !== undefined && event.seq > joinedSeq
  if (event.kind === 'membership' && event.did === did) return true
  return joinedSeq !== undefined && event.after_seq >= joinedSeq
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

/** The same for a conversation event: the message it came after. */
const prevOfConvoEvent = (eb: ExpressionBuilder<DatabaseSchema, 'convo_event'>, ofMember = false) =>
  eb
    .selectFrom('message as prev')
    .select('prev.event_id')
    .whereRef('prev.convo_id', '=', 'convo_event.convo_id')
    .whereRef('prev.seq', '=', 'convo_event.after_seq')
    .$if(ofMember, (qb) => qb.where(sql<boolean>`prev.seq > member.joined_seq`))
    .as('prev_event_id')

function messagesOf(db: Db, segment: Segment, limit: number) {
  return db
    .selectFrom('message')
    .where('message.event_id', '>', segment.after)
    .where('message.event_id', '<=', segment.upTo)
    .orderBy('message.event_id')
    .limit(limit)
}

function convoEventsOf(db: Db, segment: Segment, limit: number) {
  return db
    .selectFrom('convo_event')
    .where('convo_event.event_id', '>', segment.after)
    .where('convo_event.event_id', '<=', segment.upTo)
    .orderBy('convo_event.event_id')
    .limit(limit)
}

/**
 * One page of a segment from the pages of its two tables, each read up to
 * `limit`: in id order, up to where a full one stopped (past it the other
 * table's rows may have ones of the full table between them).
 */
function merged<T extends EventRef>(pages: T[][], limit: number): Page<T> {
  const full = pages.filter((page) => page.length === limit)
  const cut = Math.min(...full.map((page) => (page[page.length - 1] as T).event_id))
  return {
    rows: pages
      .flat()
      .filter((row) => row.event_id <= cut)
      .sort((a, b) => a.event_id - b.event_id),
    full: full.length > 0,
  }
}

/** Pages of event ids (with each one's previous in its conversation, or not): read after every batch of writes. */
const refPages = (withPrev: boolean) => ({
  messages: statement(withPrev ? 'next_event_refs' : 'next_event_ids', (v: Segment & { limit: number }, db) =>
    messagesOf(db, v, v.limit)
      .select('message.event_id')
      .$if(withPrev, (qb) => qb.select((eb) => prevEventId(eb))),
  ),
  convoEvents: statement(
    withPrev ? 'next_convo_event_refs' : 'next_convo_event_ids',
    (v: Segment & { limit: number }, db) =>
      convoEventsOf(db, v, v.limit)
        .select('convo_event.event_id')
        .$if(withPrev, (qb) => qb.select((eb) => prevOfConvoEvent(eb))),
  ),
})
const eventRefPages = { withPrev: refPages(true), withoutPrev: refPages(false) }
/** The same, whole, read apart (see BatchRead). */
const wholePages = (withPrev: boolean) => ({
  messages: statement(withPrev ? 'next_messages_with_prev' : 'next_messages', (v: Segment & { limit: number }, db) =>
    messagesOf(db, v, v.limit)
      .selectAll('message')
      .$if(withPrev, (qb) => qb.select((eb) => prevEventId(eb))),
  ),
  convoEvents: statement(
    withPrev ? 'next_convo_events_with_prev' : 'next_convo_events',
    (v: Segment & { limit: number }, db) =>
      convoEventsOf(db, v, v.limit)
        .selectAll('convo_event')
        .$if(withPrev, (qb) => qb.select((eb) => prevOfConvoEvent(eb))),
  ),
})
const eventPages = { withPrev: wholePages(true), withoutPrev: wholePages(false) }
const currentRosters = statement('current_rosters', (v: { convoIds: string[] }, db) =>
  db
    .selectFrom('member')
    .select(['convo_id', 'did', 'joined_seq'])
    // An array the planner cannot see into, as in the read together: a probe of the key per
    // conversation, where a short array of a small table may look cheaper to scan.
    .where(sql<boolean>`convo_id = ANY(ARRAY(SELECT unnest(${v.convoIds}::text[])))`)
    .where('left_at', 'is', null),
)

/** A message as json_agg has it: bytea and timestamps as text. */
type MessageJson = Omit<MessageEvent, 'ciphertext' | 'created_at'> & { ciphertext: string; created_at: string }
/** A conversation event as json_agg has it. */
type ConvoEventJson = Omit<ConvoLogEvent, 'created_at'> & { created_at: string }

/**
 * What the hub reads while streams are open, in one statement: a segment's
 * messages and conversation events (up to `limit` of each), and the current
 * members of their conversations, as of one snapshot. Each part is a JSON
 * array (a statement has one shape of row); on Citus each is a subplan.
 */
const withMembers = (withPrev: boolean) =>
  statement(withPrev ? 'next_events_with_prev' : 'next_events', (v: Segment & { limit: number }, db) =>
    db
      .with('m', () =>
        messagesOf(db, v, v.limit)
          .selectAll('message')
          .$if(withPrev, (qb) => qb.select((eb) => prevEventId(eb))),
      )
      .with('e', () =>
        convoEventsOf(db, v, v.limit)
          .selectAll('convo_event')
          .$if(withPrev, (qb) => qb.select((eb) => prevOfConvoEvent(eb))),
      )
      .with('r', (qc) =>
        qc
          .selectFrom('member')
          .select(['member.convo_id', 'member.did', 'member.joined_seq'])
          .where('member.left_at', 'is', null)
          // An array of the conversations, not a join: one index probe each.
          .where(sql<boolean>`member.convo_id = ANY(ARRAY(SELECT convo_id FROM m UNION SELECT convo_id FROM e))`),
      )
      .selectNoFrom([
        sql<MessageJson[]>`(SELECT coalesce(json_agg(m), '[]') FROM m)`.as('messages'),
        sql<ConvoEventJson[]>`(SELECT coalesce(json_agg(e), '[]') FROM e)`.as('convo_events'),
        sql<Array<[string, string, number]>>`(
          SELECT coalesce(json_agg(json_build_array(r.convo_id, r.did, r.joined_seq)), '[]') FROM r
        )`.as('members'),
      ]),
  )
const eventsWithMembers = { withPrev: withMembers(true), withoutPrev: withMembers(false) }

/** Current members by conversation: convo -> did -> joined_seq. */
export type Memberships = Map<string, Map<string, number>>

function addMember(joined: Memberships, convoId: string, did: string, joinedSeq: number): void {
  const members = joined.get(convoId)
  if (members) members.set(did, joinedSeq)
  else joined.set(convoId, new Map([[did, joinedSeq]]))
}

/**
 * How the hub reads a batch: `together`, in one statement (one snapshot, one
 * round trip); or `apart`, the events then their conversations' members, for
 * Citus, where the one statement is six subplans, three of them on the
 * coordinator, and took about twice as long as the reads apart.
 */
export type BatchRead = 'together' | 'apart'

/**
 * The first `limit` events of a segment, in id order, and every current
 * member of their conversations (who may see them: as of the same snapshot
 * when read together, of a later one when apart); `withPrev` adds each one's
 * previous message in its conversation, which orders events drawn from
 * several ranges.
 */
export async function readEvents(
  db: Db,
  segment: Segment,
  opts: { limit: number; withPrev: boolean; read: BatchRead },
): Promise<{ page: Page<LogEvent>; members: Memberships }> {
  if (opts.read === 'apart') {
    const page = await readPage<LogEvent>(
      db,
      opts.withPrev ? eventPages.withPrev : eventPages.withoutPrev,
      segment,
      opts.limit,
    )
    const convoIds = [...new Set(page.rows.map((event) => event.convo_id))]
    const members: Memberships = new Map()
    if (convoIds.length === 0) return { page, members }
    const { rows } = await execute(db, currentRosters, { convoIds })
    for (const r of rows) addMember(members, r.convo_id, r.did, r.joined_seq)
    return { page, members }
  }
  const read = opts.withPrev ? eventsWithMembers.withPrev : eventsWithMembers.withoutPrev
  const { rows } = await execute(db, read, { ...segment, limit: opts.limit })
  const { messages, convo_events, members } = rows[0] as NonNullable<(typeof rows)[0]>
  const page = merged<LogEvent>(
    [
      messages.map((m) => ({ ...m, ciphertext: byteaFromText(m.ciphertext), created_at: new Date(m.created_at) })),
      convo_events.map((e) => ({ ...e, created_at: new Date(e.created_at) })),
    ],
    opts.limit,
  )
  const joined: Memberships = new Map()
  for (const [convoId, did, joinedSeq] of members) addMember(joined, convoId, did, joinedSeq)
  return { page, members: joined }
}

/** As readEvents, ids only: all that moves a watermark when no stream reads the events. */
export const readEventRefs = (db: Db, segment: Segment, opts: { limit: number; withPrev: boolean }) =>
  readPage<EventRef>(db, opts.withPrev ? eventRefPages.withPrev : eventRefPages.withoutPrev, segment, opts.limit)

async function readPage<T extends EventRef>(
  db: Db,
  page: Record<'messages' | 'convoEvents', Statement<Segment & { limit: number }, unknown>>,
  segment: Segment,
  limit: number,
): Promise<Page<T>> {
  const values = { ...segment, limit }
  const pages = await Promise.all([execute(db, page.messages, values), execute(db, page.convoEvents, values)])
  return merged<T>(
    pages.map((result) => result.rows as T[]),
    limit,
  )
}

/** The highest event id at or below `below`, if any (an index scan down from it, in each table). */
export async function highestEventId(db: Db, below: number): Promise<number | undefined> {
  const { rows } = await sql<{ id: number | null }>`
    SELECT GREATEST(
      (SELECT event_id FROM message WHERE event_id <= ${below} ORDER BY event_id DESC LIMIT 1),
      (SELECT event_id FROM convo_event WHERE event_id <= ${below} ORDER BY event_id DESC LIMIT 1)
    ) AS id`.execute(db)
  return rows[0]?.id ?? undefined
}

/** The lowest event id of a segment, if any. */
export async function lowestEventId(db: Db, segment: Segment): Promise<number | undefined> {
  const { rows } = await sql<{ id: number | null }>`
    SELECT LEAST(
      (SELECT event_id FROM message WHERE event_id > ${segment.after} AND event_id <= ${segment.upTo}
        ORDER BY event_id LIMIT 1),
      (SELECT event_id FROM convo_event WHERE event_id > ${segment.after} AND event_id <= ${segment.upTo}
        ORDER BY event_id LIMIT 1)
    ) AS id`.execute(db)
  return rows[0]?.id ?? undefined
}

const currentMemberships = statement('current_memberships', (v: { dids: string[]; convoIds: string[] }, db) =>
  db
    .selectFrom('member')
    .select(['convo_id', 'did', 'joined_seq'])
    .where(sql<boolean>`convo_id = ANY(${v.convoIds}::text[])`)
    .where(sql<boolean>`did = ANY(${v.dids}::text[])`)
    .where('left_at', 'is', null),
)

/** convo -> did -> joined_seq, for the current members among the given ones. */
export async function memberships(db: Db, dids: string[], convoIds: string[]): Promise<Memberships> {
  const { rows } = await execute(db, currentMemberships, { dids, convoIds })
  const joined: Memberships = new Map()
  for (const r of rows) addMember(joined, r.convo_id, r.did, r.joined_seq)
  return joined
}

type ReplayArgs = { did: string; convoId?: string | undefined; withPrev: boolean; limit: number }

/** The messages of a segment a member may see (see visibleTo). */
const replayMessages = (db: Db, segment: Segment, args: ReplayArgs) =>
  messagesOf(db, segment, args.limit)
    .innerJoin('member', (join) =>
      join
        .onRef('member.convo_id', '=', 'message.convo_id')
        .on('member.did', '=', args.did)
        .on('member.left_at', 'is', null),
    )
    .selectAll('message')
    .$if(args.withPrev, (qb) => qb.select((eb) => prevEventId(eb, true)))
    .whereRef('message.seq', '>', 'member.joined_seq')
    .$if(args.convoId !== undefined, (qb) => qb.where('message.convo_id', '=', args.convoId as string))
    .execute()

/** The conversation events of a segment a member may see (see visibleTo). */
const replayConvoEvents = (db: Db, segment: Segment, args: ReplayArgs) =>
  convoEventsOf(db, segment, args.limit)
    .leftJoin('member', (join) =>
      join
        .onRef('member.convo_id', '=', 'convo_event.convo_id')
        .on('member.did', '=', args.did)
        .on('member.left_at', 'is', null),
    )
    .selectAll('convo_event')
    .$if(args.withPrev, (qb) => qb.select((eb) => prevOfConvoEvent(eb, true)))
    .where((eb) =>
      eb.or([
        eb('member.joined_seq', '<=', eb.ref('convo_event.after_seq')),
        eb.and([eb('convo_event.kind', '=', 'membership'), eb('convo_event.did', '=', args.did)]),
      ]),
    )
    .$if(args.convoId !== undefined, (qb) => qb.where('convo_event.convo_id', '=', args.convoId as string))
    .execute()

/**
 * Events a member may see in some segments, at most `limit` per segment,
 * each segment's in id order: the replay part of a resumed stream.
 * `withPrev` adds each one's previous message in its conversation, when the
 * member may see that one.
 */
export async function replayEvents(
  db: Db,
  args: ReplayArgs & { segments: Segment[] },
): Promise<{ events: LogEvent[]; full: boolean }> {
  const pages = await Promise.all(
    args.segments.map(async (segment) =>
      merged<LogEvent>(
        await Promise.all([replayMessages(db, segment, args), replayConvoEvents(db, segment, args)]),
        args.limit,
      ),
    ),
  )
  return { events: pages.flatMap((page) => page.rows), full: pages.some((page) => page.full) }
}
