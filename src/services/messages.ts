import { randomUUID } from 'node:crypto'
import { sql, type RawBuilder } from 'kysely'
import type { Db } from '../db/index.js'
import { executePrepared } from '../db/prepared.js'
import type { Message } from '../db/schema.js'
import { executeRecorded, unrecorded, writeStatement, type RecordedWrite } from '../idempotency/store.js'
import type { MessageView } from '../lexicon/types/blue.catbird.mls.defs.js'
import { epochMismatch, invalidRequest, requireGroup } from './errors.js'
import { storeGroupInfoWithCommit, type GroupInfo } from './groupInfo.js'
import { requireMember } from './convos.js'
import { iso } from './timestamps.js'
import { settleWelcomeByActivity } from './welcomes.js'

/** What a sender is told of a stored message (commits too: they are delivered as messages). */
export interface SentMessage {
  id: string
  seq: number
  /** Position in the event stream of every conversation (see src/events/hub.ts). */
  eventId: number
  createdAt: Date
  /** The sender's pending Welcome was settled by this message. */
  settledWelcome: boolean
}

export interface SentRow {
  id: string
  seq: number
  event_id: number
  created_at: Date
  /** How many Welcomes the sending settled. */
  settled: number
}

export const sentMessage = (row: SentRow): SentMessage => ({
  id: row.id,
  seq: row.seq,
  eventId: row.event_id,
  createdAt: row.created_at,
  settledWelcome: row.settled > 0,
})

export interface SendMessageArgs {
  convoId: string
  sender: string
  /** The MLS group id in the message's header, lowercase hex. */
  groupId: string
  epoch: number
  ciphertext: Uint8Array
  embedType?: string
  embedUri?: string
}

/** What storeMessage stores: a message, or a commit with the GroupInfo of the epoch it leads to, if one came. */
export type StoredMessageArgs = SendMessageArgs &
  ({ kind: 'message' } | { kind: 'commit'; groupInfo?: GroupInfo | undefined })

/**
 * The CTEs that store a message: the checks, the next per-conversation
 * sequence number (the conversation row's lock orders concurrent senders, and
 * a rolled-back send gives its number back, so numbers have no gaps), the
 * insert (`inserted`: id, seq, event_id, created_at), and settling the
 * sender's Welcome (`settled`). Nothing is stored when the sender is not a
 * current member, the group or epoch is not the conversation's, or a keyed
 * write's record is already there (see writeStatement). A commit also moves
 * the conversation to the next epoch, is listed for getCommits, and replaces
 * the conversation's GroupInfo (see storeGroupInfoWithCommit). Used inside
 * larger statements.
 */
export function messageCtes(args: StoredMessageArgs, record?: RecordedWrite): RawBuilder<unknown> {
  const commit = args.kind === 'commit'
  return sql`
    sender AS (
      SELECT 1 FROM member
      WHERE convo_id = ${args.convoId} AND did = ${args.sender} AND left_at IS NULL
    ), bumped AS (
      UPDATE convo
      SET last_seq = last_seq + 1, last_activity_at = now(),
          ${commit ? sql`epoch = epoch + 1` : sql`last_message_at = now()`}
      WHERE id = ${args.convoId} AND epoch = ${args.epoch} AND lower(group_id) = ${args.groupId}
        AND EXISTS (SELECT 1 FROM sender)${unrecorded(record)}
      RETURNING last_seq
    ), inserted AS (
      INSERT INTO message (id, convo_id, seq, sender_did, epoch, ciphertext, embed_type, embed_uri)
      SELECT ${randomUUID()}::uuid, ${args.convoId}, last_seq, ${args.sender}, ${args.epoch},
             ${args.ciphertext}, ${args.embedType ?? null}, ${args.embedUri ?? null}
      FROM bumped
      RETURNING id, seq, event_id, created_at${commit ? sql`, ciphertext` : sql``}
    ), ${
      args.kind === 'commit'
        ? sql`listed AS (
      INSERT INTO commit (convo_id, epoch, sender_did, data, seq)
      SELECT ${args.convoId}, ${args.epoch}, ${args.sender}, ciphertext, seq FROM inserted
    ), group_info_kept AS (
      ${storeGroupInfoWithCommit(args.convoId, args.sender, args.groupInfo)}
    ), `
        : sql``
    }settled AS (
      ${settleWelcomeByActivity(args.convoId, args.sender)}
        AND EXISTS (SELECT 1 FROM inserted)
      RETURNING 1
    )`
}

/** The stored message's row, after messageCtes. */
export const sentColumns = sql`id, seq, event_id, created_at, (SELECT count(*) FROM settled)::int AS settled`
/** sentColumns' types, for its delegated function (src/db/delegated.ts). */
export const SENT_COLUMN_TYPES = 'id uuid, seq bigint, event_id bigint, created_at timestamptz, settled int'

/**
 * The statement storeMessage sends, and its prepared statement's name (the bench's bare peer sends the same).
 * @public
 */
export function storeMessageStatement(
  args: StoredMessageArgs,
  record?: RecordedWrite,
): { name: string; statement: RawBuilder<SentRow> } {
  const withGroupInfo = args.kind === 'commit' && args.groupInfo !== undefined
  return {
    // One name per text: a commit that brings a GroupInfo stores it, one that does not deletes the stored one.
    name: `store_${args.kind}${withGroupInfo ? '_with_group_info' : ''}${record ? '_keyed' : ''}`,
    statement: writeStatement(record, {
      ctes: messageCtes(args, record),
      written: 'inserted',
      select: sql<SentRow>`SELECT ${sentColumns} FROM inserted`,
    }),
  }
}

/**
 * Stores a message in one statement (see messageCtes), or nothing
 * (undefined). A keyed write is checked and recorded by the same statement
 * (see src/idempotency/store.ts). Sent as a prepared statement.
 */
export async function storeMessage(
  db: Db,
  args: StoredMessageArgs,
  record?: RecordedWrite,
): Promise<SentMessage | undefined> {
  const { name, statement } = storeMessageStatement(args, record)
  const delegation = { shardKey: args.convoId, columns: SENT_COLUMN_TYPES }
  const row = (await executeRecorded(db, name, statement, record, delegation))[0]
  return row && sentMessage(row)
}

/** Stores an application message or a proposal (one statement; see storeMessage). */
export async function sendMessage(db: Db, args: SendMessageArgs, record?: RecordedWrite): Promise<SentMessage> {
  const sent = await storeMessage(db, { ...args, kind: 'message' }, record)
  if (sent) return sent
  // Nothing stored: say why (this path only runs for refused sends).
  const { convo } = await requireMember(db, args.convoId, args.sender)
  requireGroup(convo.group_id, args.groupId)
  throw epochMismatch(convo.epoch, args.epoch)
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

export function toMessageView(m: Message): MessageView {
  return {
    id: m.id,
    convoId: m.convo_id,
    sender: m.sender_did,
    ciphertext: m.ciphertext,
    epoch: m.epoch,
    seq: m.seq,
    createdAt: iso(m.created_at),
    ...(m.embed_type !== null ? { embedType: m.embed_type } : {}),
    ...(m.embed_uri !== null ? { embedUri: m.embed_uri } : {}),
  }
}

/**
 * Messages after `sinceMessage` (or from the start), in sequence order. A
 * member sees only what was sent while it was a member.
 */
export async function listMessages(
  db: Db,
  args: { convoId: string; did: string; sinceMessage?: string; limit: number },
): Promise<{ messages: MessageView[]; cursor?: string }> {
  const { joinedSeq } = await requireMember(db, args.convoId, args.did)
  let afterSeq = joinedSeq
  if (args.sinceMessage !== undefined) {
    const cursorRow = UUID.test(args.sinceMessage)
      ? await db
          .selectFrom('message')
          .select('seq')
          .where('id', '=', args.sinceMessage)
          .where('convo_id', '=', args.convoId)
          .executeTakeFirst()
      : undefined
    if (!cursorRow) {
      throw invalidRequest('InvalidCursor', 'sinceMessage is not a message of this conversation')
    }
    afterSeq = Math.max(afterSeq, cursorRow.seq)
  }
  const page = db
    .selectFrom('message')
    .selectAll()
    .where('convo_id', '=', args.convoId)
    .where('seq', '>', afterSeq)
    .orderBy('seq')
    .limit(args.limit + 1)
  const { rows } = await executePrepared(db, 'message_page', page)
  const shown = rows.slice(0, args.limit)
  const last = shown[shown.length - 1]
  return {
    messages: shown.map(toMessageView),
    ...(rows.length > args.limit && last ? { cursor: last.id } : {}),
  }
}
