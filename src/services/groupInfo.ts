import { sql } from 'kysely'
import type { Db } from '../db/schema.js'
import type { Step } from '../db/steps.js'
import { requireMember } from './membership.js'
import { conflict, epochMismatch, invalidRequest, notFound, requireGroup } from './errors.js'

/**
 * A GroupInfo as the API read it: its bytes and what RFC 9420 leaves in the
 * clear. The server keeps one per conversation, of its current epoch, for a
 * member whose device lost its state to rejoin by external commit.
 */
export interface GroupInfo {
  data: Uint8Array
  /** The MLS group id, lowercase hex. */
  groupId: string
  epoch: number
  cipherSuite: string
  /** Carries the external_pub extension: without it no one can join by external commit. */
  externalPub: boolean
}

const invalidGroupInfo = (why: string) => invalidRequest('InvalidGroupInfo', `groupInfo ${why}`)

function requireExternalPub(info: GroupInfo): void {
  if (!info.externalPub) {
    throw invalidGroupInfo('carries no external_pub extension: no one could join by external commit with it')
  }
}

/** A GroupInfo of another cipher suite than its conversation's is garbage: no member could have made it. */
function requireSuite(conversationSuite: string, info: GroupInfo): void {
  if (info.cipherSuite !== conversationSuite) {
    throw invalidGroupInfo(`is of cipher suite ${info.cipherSuite}, not the conversation's ${conversationSuite}`)
  }
}

/**
 * The GroupInfo sent with a commit (or with a new conversation): of the
 * conversation's group and cipher suite, with external_pub, and of
 * `target.epoch`, the epoch it leads to (`which` says so in the refusal).
 */
export function requireGroupInfoOf(
  target: { groupId: string; cipherSuite: string; epoch: number },
  info: GroupInfo,
  which: string,
): void {
  requireGroup(target.groupId, info.groupId)
  requireSuite(target.cipherSuite, info)
  requireExternalPub(info)
  if (info.epoch !== target.epoch)
    throw invalidGroupInfo(`describes epoch ${info.epoch}, not ${target.epoch}, ${which}`)
}

/**
 * The step that keeps a conversation's GroupInfo in step with a commit
 * stored by the same write (after step `inserted`, the commit's message):
 * the commit's GroupInfo (`withGroupInfo`: its epoch and bytes are values;
 * requireGroupInfoOf checked it) replaces the stored one; without one the
 * stored one goes, since no external commit can be built on an epoch the
 * conversation has left.
 */
export function groupInfoWithCommitStep(
  withGroupInfo: boolean,
  v: { convoId: string; sender: string; groupInfoEpoch: number | null; groupInfoData: Uint8Array | null },
): Step {
  const name = 'group_info_kept'
  if (!withGroupInfo) return { name, delete: 'group_info', where: sql`convo_id = ${v.convoId}`, after: ['inserted'] }
  return {
    name,
    insert: 'group_info',
    values: { convo_id: v.convoId, epoch: v.groupInfoEpoch, data: v.groupInfoData, stored_by: v.sender },
    tail: sql`ON CONFLICT (convo_id) DO UPDATE
      SET epoch = EXCLUDED.epoch, data = EXCLUDED.data, stored_by = EXCLUDED.stored_by, created_at = EXCLUDED.created_at`,
    after: ['inserted'],
  }
}

/**
 * Stores `info` as the GroupInfo of the conversation's current epoch, in one
 * statement that holds the conversation row (FOR SHARE) so that no commit
 * slips in between the epoch check and the write. Answers whether it was
 * stored (false: this very GroupInfo already was). Refused: not a current
 * member (403), another group or suite, no external_pub (400), an epoch the
 * conversation left (409 StaleGroupInfo) or has not reached (409 EpochMismatch).
 */
export async function putGroupInfo(
  db: Db,
  args: { convoId: string; caller: string; info: GroupInfo },
): Promise<boolean> {
  const { convoId, caller, info } = args
  requireExternalPub(info)
  const { rows } = await sql<{ stored: number }>`
    WITH current AS (
      SELECT convo.id FROM convo
      JOIN member ON member.convo_id = convo.id AND member.did = ${caller} AND member.left_at IS NULL
      WHERE convo.id = ${convoId} AND convo.epoch = ${info.epoch}
        AND lower(convo.group_id) = ${info.groupId} AND convo.cipher_suite = ${info.cipherSuite}
      FOR SHARE OF convo
    )
    INSERT INTO group_info (convo_id, epoch, data, stored_by)
    SELECT id, ${info.epoch}, ${info.data}, ${caller} FROM current
    ON CONFLICT (convo_id) DO UPDATE
      SET epoch = EXCLUDED.epoch, data = EXCLUDED.data, stored_by = EXCLUDED.stored_by, created_at = EXCLUDED.created_at
      WHERE group_info.epoch <> EXCLUDED.epoch OR group_info.data <> EXCLUDED.data
    RETURNING 1 AS stored
  `.execute(db)
  if (rows.length > 0) return true
  // Nothing written: say why, or that it was there already (this path only runs for those).
  const { convo } = await requireMember(db, convoId, caller)
  requireGroup(convo.group_id, info.groupId)
  requireSuite(convo.cipher_suite, info)
  if (info.epoch < convo.epoch) {
    throw conflict(
      'StaleGroupInfo',
      `The GroupInfo is of epoch ${info.epoch}; the conversation is at epoch ${convo.epoch}`,
    )
  }
  if (info.epoch > convo.epoch) throw epochMismatch(convo.epoch, info.epoch)
  return false
}

const unavailable = () =>
  notFound(
    'GroupInfoUnavailable',
    'No GroupInfo is stored for the current epoch: a member has to store one (updateGroupInfo) before anyone can rejoin',
  )

/** The GroupInfo of the conversation's current epoch, for a current member. */
export async function fetchGroupInfo(
  db: Db,
  args: { convoId: string; caller: string },
): Promise<{ data: Uint8Array; epoch: number }> {
  const { convo } = await requireMember(db, args.convoId, args.caller)
  const row = await db
    .selectFrom('group_info')
    .select(['data', 'epoch'])
    .where('convo_id', '=', convo.id)
    .where('epoch', '=', convo.epoch)
    .executeTakeFirst()
  if (!row) throw unavailable()
  return row
}
