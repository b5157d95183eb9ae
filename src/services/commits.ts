import { sql } from 'kysely'
import type { Convo, Db } from '../db/schema.js'
import type { RecordedWrite } from '../idempotency/statement.js'
import type { CommitMessage } from '../lexicon/types/blue.catbird.mls.getCommits.js'
import { epochMismatch, invalidRequest, requireGroup } from './errors.js'
import { requireGroupInfoOf, type GroupInfo } from './groupInfo.js'
import { requireMember } from './membership.js'
import { cursorTooOld, purgedUpTo } from './retention.js'
import { storeMessage, toSentMessage, type SentMessage, type StoredMessageArgs } from './messages.js'
import { iso } from './timestamps.js'

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

/** A commit as messageCtes stores it: a message that also moves the epoch, with its GroupInfo. */
export const commitMessage = (
  convoId: string,
  sender: string,
  commit: Commit,
  named: Pick<StoredMessageArgs, 'msgId' | 'ephemeral'> = {},
): StoredMessageArgs => ({
  kind: 'commit',
  convoId,
  sender,
  groupId: commit.groupId,
  epoch: commit.epoch,
  ciphertext: commit.data,
  groupInfo: commit.groupInfo,
  ...named,
})

export interface StoredCommit extends SentMessage {
  /** The conversation's epoch after the commit. */
  newEpoch: number
}

/**
 * Where a commit stands against the conversation (locked, for a membership
 * change). Built on the current epoch: undefined, go ahead. The very commit
 * `sender` already got stored for its epoch (a retry): what was stored then,
 * so the retry is answered as the first time and changes nothing. Anything
 * else: refused. A GroupInfo sent with a commit on the current epoch must
 * describe the epoch it leads to.
 */
export async function checkCommit(
  db: Db,
  convo: Pick<Convo, 'id' | 'group_id' | 'cipher_suite' | 'epoch'>,
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
      ? await db
          .selectFrom('commit')
          .innerJoin('message', (join) =>
            join.onRef('message.convo_id', '=', 'commit.convo_id').onRef('message.seq', '=', 'commit.seq'),
          )
          .select([
            sql<string>`coalesce(message.msg_id, message.id::text)`.as('id'),
            'message.seq',
            'message.epoch',
            'message.event_id',
            'message.created_at',
            sql<number>`0`.as('settled'),
          ])
          .where('commit.convo_id', '=', convo.id)
          .where('commit.epoch', '=', commit.epoch)
          .where('commit.sender_did', '=', sender)
          .where('commit.data', '=', commit.data)
          .executeTakeFirst()
      : undefined
  if (!stored) throw epochMismatch(convo.epoch, commit.epoch)
  return { ...toSentMessage(stored), newEpoch: commit.epoch + 1 }
}

/**
 * Stores a commit sent as a message (or as an external commit), in one
 * statement (storeMessage): the conversation moves to the next epoch only
 * from the commit's own epoch, so one commit wins each epoch (the
 * conversation's row lock orders the contenders, and the commit table's
 * (convo, epoch) key backs it up); the commit gets the next sequence number
 * as a message (members receive it in order with the others) and its entry
 * in getCommits; committing proves the sender has joined, so its pending
 * Welcome is settled; the conversation's GroupInfo becomes the one sent with
 * the commit, or none. The same commit sent again by its sender is answered
 * with what was stored the first time (looked up only when the statement
 * stored nothing, as are the reasons for a refusal).
 */
export async function sendCommit(
  db: Db,
  args: { convoId: string; sender: string; commit: Commit } & Pick<StoredMessageArgs, 'msgId' | 'ephemeral'>,
  record?: RecordedWrite,
): Promise<StoredCommit> {
  // A GroupInfo sent along is checked against the conversation (its cipher
  // suite) before anything is stored; a retry is answered then and there,
  // unless it has a key: its statement finds the record and replays it.
  if (args.commit.groupInfo) {
    const { convo } = await requireMember(db, args.convoId, args.sender)
    const retried = await checkCommit(db, convo, args.sender, args.commit)
    if (retried && !record) return retried
  }
  const { msgId, ephemeral } = args
  const sent = await storeMessage(
    db,
    commitMessage(args.convoId, args.sender, args.commit, { msgId, ephemeral }),
    record,
  )
  if (sent) return { ...sent, newEpoch: args.commit.epoch + 1 }
  const { convo } = await requireMember(db, args.convoId, args.sender)
  const retried = await checkCommit(db, convo, args.sender, args.commit)
  // Built on the epoch the conversation is at now: it moved while this was looked up.
  if (!retried) throw epochMismatch(convo.epoch, args.commit.epoch)
  return retried
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
  // Commits from fromEpoch on that the conversation no longer keeps: the caller cannot catch up from there.
  const first = rows[0]
  if (!first || first.epoch > args.fromEpoch) {
    const purged = await purgedUpTo(db, args.convoId)
    if (purged.epoch !== null && args.fromEpoch <= purged.epoch) throw cursorTooOld(purged.seq)
  }
  return rows.map((r) => ({
    epoch: r.epoch,
    sender: r.sender_did,
    commitData: r.data,
    createdAt: iso(r.created_at),
  }))
}
