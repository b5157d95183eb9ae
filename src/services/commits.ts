import type { Db } from '../db/index.js'
import type { CommitMessage } from '../lexicon/types/blue.catbird.mls.getCommits.js'
import { invalidRequest } from '../xrpc/errors.js'
import { iso } from './util.js'

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
