import { sql } from 'kysely'
import type { Db } from '../db/index.js'
import type { Message } from '../db/schema.js'
import type { MessageView } from '../lexicon/types/blue.catbird.mls.defs.js'
import { invalidRequest } from '../xrpc/errors.js'
import { sentMessage, type SentMessage } from './commits.js'
import { epochMismatch, requireGroup } from './errors.js'
import { requireMember } from './convos.js'
import { iso } from './util.js'
import { settleWelcomeByActivity } from './welcomes.js'

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

/**
 * Stores an application message or a proposal in one statement: the
 * membership, group and epoch checks, the next per-conversation sequence
 * number (the conversation row's lock orders concurrent senders, and a
 * rolled-back send gives its number back, so numbers have no gaps), the
 * insert, and settling the sender's Welcome.
 */
export async function sendMessage(db: Db, args: SendMessageArgs): Promise<SentMessage> {
  const { rows } = await sql<{ id: string; seq: number; event_id: number; created_at: Date; settled: number }>`
    WITH sender AS (
      SELECT 1 FROM member
      WHERE convo_id = ${args.convoId} AND did = ${args.sender} AND left_at IS NULL
    ), bumped AS (
      UPDATE convo
      SET last_seq = last_seq + 1, last_message_at = now(), last_activity_at = now()
      WHERE id = ${args.convoId} AND epoch = ${args.epoch} AND lower(group_id) = ${args.groupId}
        AND EXISTS (SELECT 1 FROM sender)
      RETURNING last_seq
    ), inserted AS (
      INSERT INTO message (id, convo_id, seq, sender_did, epoch, ciphertext, embed_type, embed_uri)
      SELECT gen_random_uuid(), ${args.convoId}, last_seq, ${args.sender}, ${args.epoch},
             ${args.ciphertext}, ${args.embedType ?? null}, ${args.embedUri ?? null}
      FROM bumped
      RETURNING id, seq, event_id, created_at
    ), settled AS (
      ${settleWelcomeByActivity(args.convoId, args.sender)}
        AND EXISTS (SELECT 1 FROM inserted)
      RETURNING 1
    )
    SELECT id, seq, event_id, created_at, (SELECT count(*) FROM settled)::int AS settled FROM inserted
  `.execute(db)
  const row = rows[0]
  if (row) return sentMessage(row)
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
  const rows = await db
    .selectFrom('message')
    .selectAll()
    .where('convo_id', '=', args.convoId)
    .where('seq', '>', afterSeq)
    .orderBy('seq')
    .limit(args.limit + 1)
    .execute()
  const page = rows.slice(0, args.limit)
  const last = page[page.length - 1]
  return {
    messages: page.map(toMessageView),
    ...(rows.length > args.limit && last ? { cursor: last.id } : {}),
  }
}
