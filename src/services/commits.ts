import { sql } from 'kysely'
import type { Db } from '../db/index.js'
import type { Convo } from '../db/schema.js'
import type { CommitMessage } from '../lexicon/types/blue.catbird.mls.getCommits.js'
import { invalidRequest } from '../xrpc/errors.js'
import { convoNotFound, epochMismatch, notMember, requireGroup } from './errors.js'
import { requireGroupInfoOf, storeGroupInfoWithCommit, type GroupInfo } from './groupInfo.js'
import { iso, transact } from './util.js'
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

/** A stored message's row as its sender is answered: `settled` counts the Welcomes its sending settled. */
export const sentMessage = (row: { id: string; seq: number; event_id: number; created_at: Date; settled: number }): SentMessage => ({
  id: row.id,
  seq: row.seq,
  eventId: row.event_id,
  createdAt: row.created_at,
  settledWelcome: row.settled > 0,
})

/** A commit as the API read it: its bytes and what its MLS header says. */
export interface Commit {
  data: Uint8Array
  /** The MLS group id, lowercase hex. */
  groupId: string
  /** The epoch it was built on; it moves the group to epoch + 1. */
  epoch: number
  /** The GroupInfo of epoch + 1 sent along, stored with the commit (for rejoining by external commit). */
  groupInfo?: GroupInfo
}

export interface StoredCommit extends SentMessage {
  /** The conversation's epoch after the commit. */
  newEpoch: number
}

export type LockedConvo = Pick<Convo, 'id' | 'group_id' | 'cipher_suite' | 'epoch' | 'last_seq'>

/** Like requireMember, but locks the conversation row for an epoch or membership change. */
export async function lockConvoForMember(
  db: Db,
  convoId: string,
  did: string,
): Promise<{ convo: LockedConvo; isMember: boolean; wasMember: boolean }> {
  const row = await db
    .selectFrom('convo')
    .select(['id', 'group_id', 'cipher_suite', 'epoch', 'last_seq'])
    .where('id', '=', convoId)
    .forUpdate()
    .executeTakeFirst()
  if (!row) throw convoNotFound()
  const member = await db
    .selectFrom('member')
    .select(['left_at'])
    .where('convo_id', '=', convoId)
    .where('did', '=', did)
    .executeTakeFirst()
  return { convo: row, isMember: member !== undefined && member.left_at === null, wasMember: member !== undefined }
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
  if (commit.epoch === convo.epoch) {
    if (commit.groupInfo) {
      const next = { groupId: convo.group_id, cipherSuite: convo.cipher_suite, epoch: commit.epoch + 1 }
      requireGroupInfoOf(next, commit.groupInfo, 'the epoch the commit leads to')
    }
    return undefined
  }
  const stored =
    commit.epoch < convo.epoch
      ? await trx
          .selectFrom('commit')
          .innerJoin('message', (join) =>
            join.onRef('message.convo_id', '=', 'commit.convo_id').onRef('message.seq', '=', 'commit.seq'),
          )
          .select(['message.id', 'message.seq', 'message.event_id', 'message.created_at', sql<number>`0`.as('settled')])
          .where('commit.convo_id', '=', convo.id)
          .where('commit.epoch', '=', commit.epoch)
          .where('commit.sender_did', '=', sender)
          .where('commit.data', '=', commit.data)
          .executeTakeFirst()
      : undefined
  if (!stored) throw epochMismatch(convo.epoch, commit.epoch)
  return { ...sentMessage(stored), newEpoch: commit.epoch + 1 }
}

/**
 * Stores a commit `checkCommit` let through, in one statement: the
 * conversation moves to the next epoch; the commit gets the next sequence
 * number as a message (members receive it in order with the others: the
 * messages after it are of the next epoch) and its entry in getCommits. The
 * caller holds the conversation's row lock; the commit table's (convo,
 * epoch) key backs it up: one commit per epoch. Committing proves the
 * sender has joined, so its pending Welcome is settled. The conversation's
 * GroupInfo becomes the one sent with the commit (checked by checkCommit,
 * or by createConvo), or none.
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
    ), group_info_kept AS (
      ${storeGroupInfoWithCommit(convoId, sender, commit.groupInfo)}
    )
    SELECT id, seq, event_id, created_at, (SELECT count(*) FROM settled)::int AS settled FROM delivered
  `.execute(trx)
  const row = rows[0]
  if (!row) throw new Error(`conversation ${convoId} vanished under its row lock`)
  return { ...sentMessage(row), newEpoch: commit.epoch + 1 }
}

/**
 * Stores a commit sent as a message: one commit wins each epoch (the
 * conversation's row lock orders the contenders), and the same commit sent
 * again by its sender is answered with what was stored the first time.
 */
export async function sendCommit(
  db: Db,
  args: { convoId: string; sender: string; commit: Commit },
): Promise<StoredCommit> {
  return transact(db, async (trx) => {
    const { convo, isMember } = await lockConvoForMember(trx, args.convoId, args.sender)
    if (!isMember) throw notMember()
    return (await checkCommit(trx, convo, args.sender, args.commit)) ?? storeCommit(trx, args)
  })
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
