import { sql } from 'kysely'
import type { Db } from '../db/index.js'
import type { CommitMessage } from '../lexicon/types/blue.catbird.mls.getCommits.js'
import { invalidRequest } from '../xrpc/errors.js'
import { epochMismatch, groupMismatch } from './errors.js'
import type { LockedConvo } from './convos.js'
import type { SentMessage } from './messages.js'
import { iso } from './util.js'
import { settleWelcomeByActivity } from './welcomes.js'

/** A commit as the API read it: its bytes and what its MLS header says. */
export interface Commit {
  data: Uint8Array
  /** The MLS group id, lowercase hex. */
  groupId: string
  /** The epoch it was built on; it moves the group to epoch + 1. */
  epoch: number
}

export interface StoredCommit extends SentMessage {
  /** The conversation's epoch after the commit. */
  newEpoch: number
}

/** A conversation's group id against a message's (lowercase hex); ids are stored as clients sent them. */
export function requireGroup(convoGroupId: string, messageGroupId: string): void {
  if (convoGroupId.toLowerCase() !== messageGroupId) throw groupMismatch(convoGroupId, messageGroupId)
}

/**
 * Where a commit stands against the locked conversation. Built on the
 * current epoch: undefined, go ahead. The very commit `sender` already got
 * stored for its epoch (a retry): what was stored then, so the retry is
 * answered as the first time and changes nothing. Anything else: refused.
 */
export async function checkCommit(
  trx: Db,
  convo: LockedConvo,
  sender: string,
  commit: Commit,
): Promise<StoredCommit | undefined> {
  requireGroup(convo.group_id, commit.groupId)
  if (commit.epoch === convo.epoch) return undefined
  const stored =
    commit.epoch < convo.epoch
      ? await trx
          .selectFrom('commit')
          .innerJoin('message', (join) =>
            join.onRef('message.convo_id', '=', 'commit.convo_id').onRef('message.seq', '=', 'commit.seq'),
          )
          .select(['message.id', 'message.seq', 'message.event_id', 'message.created_at'])
          .where('commit.convo_id', '=', convo.id)
          .where('commit.epoch', '=', commit.epoch)
          .where('commit.sender_did', '=', sender)
          .where('commit.data', '=', commit.data)
          .executeTakeFirst()
      : undefined
  if (!stored) throw epochMismatch(convo.epoch, commit.epoch)
  return {
    id: stored.id,
    seq: stored.seq,
    eventId: stored.event_id,
    createdAt: stored.created_at,
    settledWelcome: false,
    newEpoch: commit.epoch + 1,
  }
}

/**
 * Stores a commit `checkCommit` let through, in one statement: the
 * conversation moves to the next epoch; the commit gets the next sequence
 * number as a message (members receive it in order with the others: the
 * messages after it are of the next epoch) and its entry in getCommits. The
 * caller holds the conversation's row lock; the commit table's (convo,
 * epoch) key backs it up: one commit per epoch. Committing proves the
 * sender has joined, so its pending Welcome is settled.
 */
export async function storeCommit(
  trx: Db,
  args: { convoId: string; sender: string; commit: Commit },
): Promise<StoredCommit> {
  const { convoId, sender, commit } = args
  const { rows } = await sql<{ id: string; seq: number; event_id: number; created_at: Date; settled: number }>`
    WITH bumped AS (
      UPDATE convo SET epoch = epoch + 1, last_seq = last_seq + 1, last_activity_at = now()
      WHERE id = ${convoId}
      RETURNING last_seq
    ), delivered AS (
      INSERT INTO message (id, convo_id, seq, sender_did, epoch, ciphertext)
      SELECT gen_random_uuid(), ${convoId}, last_seq, ${sender}, ${commit.epoch}, ${commit.data} FROM bumped
      RETURNING id, seq, event_id, created_at, ciphertext
    ), listed AS (
      INSERT INTO commit (convo_id, epoch, sender_did, data, seq)
      SELECT ${convoId}, ${commit.epoch}, ${sender}, ciphertext, seq FROM delivered
    ), settled AS (
      ${settleWelcomeByActivity(convoId, sender)}
      RETURNING 1
    )
    SELECT id, seq, event_id, created_at, (SELECT count(*) FROM settled)::int AS settled FROM delivered
  `.execute(trx)
  const row = rows[0]
  if (!row) throw new Error(`conversation ${convoId} vanished under its row lock`)
  return {
    id: row.id,
    seq: row.seq,
    eventId: row.event_id,
    createdAt: row.created_at,
    settledWelcome: row.settled > 0,
    newEpoch: commit.epoch + 1,
  }
}

/**
 * Commits created in epochs fromEpoch..toEpoch (inclusive; toEpoch defaults
 * to the current epoch), in order, at most `limit` of them.
 */
export async function listCommits(
  db: Db,
  args: { convoId: string; currentEpoch: number; fromEpoch: number; toEpoch?: number; limit: number },
): Promise<CommitMessage[]> {
  const toEpoch = args.toEpoch ?? args.currentEpoch
  if (toEpoch < args.fromEpoch) {
    throw invalidRequest('InvalidEpochRange', `toEpoch ${toEpoch} is before fromEpoch ${args.fromEpoch}`)
  }
  if (args.fromEpoch > args.currentEpoch) {
    throw invalidRequest(
      'InvalidEpochRange',
      `fromEpoch ${args.fromEpoch} is after the current epoch ${args.currentEpoch}`,
    )
  }
  const rows = await db
    .selectFrom('commit')
    .select(['epoch', 'sender_did', 'data', 'created_at'])
    .where('convo_id', '=', args.convoId)
    .where('epoch', '>=', args.fromEpoch)
    .where('epoch', '<=', toEpoch)
    .orderBy('epoch')
    .limit(args.limit)
    .execute()
  return rows.map((r) => ({
    epoch: r.epoch,
    sender: r.sender_did,
    commitData: r.data,
    createdAt: iso(r.created_at),
  }))
}
