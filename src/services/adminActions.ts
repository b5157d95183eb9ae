import { randomUUID } from 'node:crypto'
import type { AdminActionKind, Db } from '../db/schema.js'

/** What an admin did (or the server: no actor), on the conversation's shard. */
export interface AdminAction {
  convoId: string
  /** Undefined: the server did it (an heir for the last admin who left). */
  actor?: string | undefined
  action: AdminActionKind
  target?: string | undefined
  reason?: string | undefined
}

/**
 * Records an action in the conversation's log of what its admins did, in the
 * transaction that made the change: the source of the moderation counts and
 * of role-change events.
 */
export async function recordAdminAction(trx: Db, action: AdminAction): Promise<void> {
  await trx
    .insertInto('admin_action')
    .values({
      convo_id: action.convoId,
      id: randomUUID(),
      actor_did: action.actor ?? null,
      action: action.action,
      target_did: action.target ?? null,
      reason: action.reason ?? null,
    })
    .execute()
}
