/**
 * What the server forgets, and when. Messages (commits included) older than
 * the message horizon go, oldest first, as a prefix of each conversation's
 * sequence: a message goes only with every message before it, so a commit
 * goes only with the messages of the epoch it was built in, and what is kept
 * can be read from its first message on. What a member would have needed
 * from before that is gone for good: reads from there answer CursorTooOld,
 * and the member rejoins by external commit (the GroupInfo of the current
 * epoch is never deleted here). Reports, the admins' log and settled device
 * additions have a horizon of their own.
 */
import { sql } from 'kysely'
import type { Db } from '../db/schema.js'
import { invalidRequest } from './errors.js'

/** The refusal of a read from a position the conversation no longer keeps. */
export const cursorTooOld = (keptAfterSeq: number) =>
  invalidRequest(
    'CursorTooOld',
    `Messages up to seq ${keptAfterSeq} are no longer kept (the server keeps messages for a limited time): ` +
      'this device cannot catch up from there; rejoin by external commit (getGroupInfo, then processExternalCommit)',
  )

/** Conversations that may hold messages older than `horizon`, the longest-waiting first. */
export async function conversationsDue(db: Db, horizon: Date, limit: number): Promise<string[]> {
  const rows = await db
    .selectFrom('convo')
    .select('id')
    .where('retained_from_at', '<', horizon)
    .orderBy('retained_from_at')
    .limit(limit)
    .execute()
  return rows.map((r) => r.id)
}

/**
 * Deletes the oldest of a conversation's messages, at most `limit`, up to
 * (not including) its first message at or after `horizon`, with their
 * commits' entries and the conversation's other events that came before
 * them (convo_event); then records how far it got (purged_seq) and the age of
 * the oldest message it keeps (retained_from_at, when the conversation is
 * due again). One statement on the conversation's shard; it touches the
 * conversation's row only for that last write. Answers how many messages it
 * deleted and whether older ones are left. (The time of a conversation left
 * with nothing is a value: Citus refuses `now()` inside CASE.)
 */
export async function purgeOldMessages(
  db: Db,
  args: { convoId: string; horizon: Date; limit: number },
): Promise<{ deleted: number; more: boolean }> {
  const { convoId, horizon, limit } = args
  const { rows } = await sql<{ deleted: number; more: boolean }>`
    WITH page AS (
      SELECT seq, created_at FROM message
      WHERE convo_id = ${convoId} AND seq > (SELECT purged_seq FROM convo WHERE id = ${convoId})
      ORDER BY seq LIMIT ${limit}
    ), cut AS (
      SELECT coalesce((SELECT min(seq) FROM page WHERE created_at >= ${horizon}) - 1, (SELECT max(seq) FROM page)) AS seq,
             (SELECT count(*) FROM page) = ${limit} AND NOT EXISTS (SELECT 1 FROM page WHERE created_at >= ${horizon}) AS more
    ), gone AS (
      DELETE FROM message m USING cut WHERE m.convo_id = ${convoId} AND m.seq <= cut.seq RETURNING m.seq
    ), commits_gone AS (
      DELETE FROM commit k USING cut
      WHERE k.convo_id = ${convoId} AND (k.seq <= cut.seq OR (k.seq IS NULL AND k.created_at < ${horizon}))
      RETURNING k.epoch
    ), events_gone AS (
      -- The conversation's other events from before its first message kept: a resume from there is told it is too old.
      DELETE FROM convo_event e USING cut WHERE e.convo_id = ${convoId} AND e.after_seq < cut.seq
    ), marked AS (
      UPDATE convo SET
        purged_seq = greatest(purged_seq, coalesce((SELECT max(seq) FROM gone), 0)),
        purged_epoch = greatest(purged_epoch, (SELECT max(epoch) FROM commits_gone)),
        retained_from_at = CASE WHEN (SELECT more FROM cut) THEN retained_from_at
          ELSE coalesce((SELECT min(created_at) FROM page, cut WHERE page.seq > coalesce(cut.seq, 0)), ${new Date()}::timestamptz) END
      WHERE id = ${convoId}
    )
    SELECT (SELECT count(*) FROM gone)::int AS deleted, coalesce((SELECT more FROM cut), false) AS more`.execute(db)
  return rows[0] ?? { deleted: 0, more: false }
}

/**
 * Deletes at most `limit` of each kind of record older than `horizon`: reports
 * and entries of the admins' log, and device additions settled before it
 * (what became of a new device in each conversation; one still waiting is
 * kept). Answers how many.
 */
export async function purgeOldModeration(db: Db, args: { horizon: Date; limit: number }): Promise<number> {
  let deleted = 0
  for (const [table, column] of [
    ['member_report', 'created_at'],
    ['admin_action', 'created_at'],
    ['pending_device_addition', 'settled_at'],
  ] as const) {
    const result = await sql`
      DELETE FROM ${sql.table(table)}
      WHERE ${sql.ref(column)} < ${args.horizon} AND (convo_id, id) IN (
        SELECT convo_id, id FROM ${sql.table(table)} WHERE ${sql.ref(column)} < ${args.horizon} LIMIT ${args.limit}
      )`.execute(db)
    deleted += Number(result.numAffectedRows ?? 0)
  }
  return deleted
}

/** How far the conversation's messages (seq) and commits (the epoch they were built on) were deleted. */
export async function purgedUpTo(db: Db, convoId: string): Promise<{ seq: number; epoch: number | null }> {
  const row = await db
    .selectFrom('convo')
    .select(['purged_seq', 'purged_epoch'])
    .where('id', '=', convoId)
    .executeTakeFirst()
  return { seq: row?.purged_seq ?? 0, epoch: row?.purged_epoch ?? null }
}
