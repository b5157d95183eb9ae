/**
 * A member's new device, waiting to be added to each of its user's
 * conversations. When a user registers a device, each of its conversations
 * gets a pending addition (one per conversation and device: none is done
 * twice); another member claims it (one claimer at a time, for a while: a
 * claim lapses and another member may take it), adds the device with a real
 * commit and Welcome (addMembers, with the device's key package the claim
 * handed out), and completes it. The facts settle it too, whoever acts: a
 * Welcome naming the device's key package (admissionSteps), or the device's
 * own external commit (rejoin). So none is lost: until settled, it is
 * listed to every member.
 */
import { randomUUID } from 'node:crypto'
import { sql } from 'kysely'
import type { Db, PendingAdditionStatus } from '../db/schema.js'
import { transact } from '../db/transaction.js'
import { recordNewDevice } from './convoEvents.js'
import { invalidRequest, notFound } from './errors.js'
import { convoIdCandidates, requireMember } from './membership.js'
import { iso } from './timestamps.js'

/** An addition as members see it. */
export interface PendingAddition {
  /** `<conversation id>.<uuid>`: the conversation is its shard. */
  id: string
  /** The conversation's MLS group id (hex): how client-era clients name it. */
  convoId: string
  userDid: string
  deviceId: string
  deviceName: string
  /** The device's MLS DID. */
  deviceCredentialDid: string
  status: 'pending' | 'in_progress'
  claimedBy?: string
  createdAt: string
}

const additionId = (convoId: string, id: string) => `${convoId}.${id}`

/** The conversation and row of an addition's id; a malformed one is no addition. */
function parseAdditionId(id: string): { convoId: string; id: string } {
  const match = /^([0-9a-z]{13,32})\.([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/.exec(id)
  if (!match) throw invalidRequest(undefined, 'pendingAdditionId is not one this server gave out')
  return { convoId: match[1] as string, id: match[2] as string }
}

/** The device's MLS DID: its user's DID and its server id. */
export const mlsDidOf = (userDid: string, deviceId: string) => `${userDid}#${deviceId}`

/**
 * A user's new device waits to be added to each conversation the user is a
 * member of (rare: a read of the user's memberships, then one insert over as
 * many shards as conversations; ids made here, as Citus wants no volatile
 * function in a distributed insert). A device already waiting keeps its one.
 * Then the members of each conversation hear of it (a newDeviceEvent with the
 * addition to claim), one statement on each conversation's shard, not in one
 * transaction over all of them: an event lost to a crash in between leaves
 * its addition listed (listPendingAdditions). Answers the events' ids, to
 * announce.
 */
export async function addPendingAdditions(
  db: Db,
  args: { userDid: string; deviceId: string; deviceName: string },
): Promise<number[]> {
  const memberships = await db
    .selectFrom('member')
    .select('convo_id')
    .where('did', '=', args.userDid)
    .where('left_at', 'is', null)
    .execute()
  if (memberships.length === 0) return []
  const convoIds = memberships.map((m) => m.convo_id)
  const { rows } = await sql<{ convo_id: string; id: string }>`
    INSERT INTO pending_device_addition (convo_id, id, user_did, device_id, device_name)
    SELECT a.convo_id, a.id, ${args.userDid}, ${args.deviceId}, ${args.deviceName}
    FROM unnest(${convoIds}::text[], ${convoIds.map(() => randomUUID())}::uuid[]) AS a(convo_id, id)
    ON CONFLICT (convo_id, user_did, device_id) DO NOTHING
    RETURNING convo_id, id`.execute(db)
  const events: number[] = []
  for (const row of rows) {
    events.push(
      await recordNewDevice(db, {
        convoId: row.convo_id,
        userDid: args.userDid,
        deviceId: args.deviceId,
        deviceName: args.deviceName,
        pendingAdditionId: additionId(row.convo_id, row.id),
      }),
    )
  }
  return events
}

/** The additions of the caller's conversations (or of those named) that no one has settled, oldest first. */
export async function listPendingAdditions(
  db: Db,
  args: { caller: string; convoIds?: string[] | undefined; limit: number },
): Promise<PendingAddition[]> {
  const named = args.convoIds?.flatMap(convoIdCandidates)
  const rows = await db
    .selectFrom('member')
    .innerJoin('pending_device_addition as a', 'a.convo_id', 'member.convo_id')
    .innerJoin('convo', 'convo.id', 'member.convo_id')
    .select([
      'a.convo_id',
      'a.id',
      'a.user_did',
      'a.device_id',
      'a.device_name',
      'a.status',
      'a.claimed_by',
      'a.created_at',
      'convo.group_id',
      sql<boolean>`a.claimed_until > now()`.as('claim_live'),
    ])
    .where('member.did', '=', args.caller)
    .where('member.left_at', 'is', null)
    .where('a.status', 'in', ['pending', 'in_progress'])
    .$if(named !== undefined, (qb) => qb.where('member.convo_id', 'in', named?.length ? named : ['']))
    .orderBy('a.created_at')
    .orderBy('a.id')
    .limit(args.limit)
    .execute()
  return rows.map((row) => {
    // A lapsed claim is pending again: anyone may take it.
    const claimed = row.status === 'in_progress' && row.claim_live && row.claimed_by !== null
    return {
      id: additionId(row.convo_id, row.id),
      convoId: row.group_id.toLowerCase(),
      userDid: row.user_did,
      deviceId: row.device_id,
      deviceName: row.device_name,
      deviceCredentialDid: mlsDidOf(row.user_did, row.device_id),
      status: claimed ? 'in_progress' : 'pending',
      ...(claimed && row.claimed_by ? { claimedBy: row.claimed_by } : {}),
      createdAt: iso(row.created_at),
    }
  })
}

export type ClaimOutcome =
  | { claimed: true; convoId: string; groupId: string; userDid: string; deviceId: string }
  | { claimed: false; settled: boolean; claimedBy?: string; groupId: string; userDid: string; deviceId: string }

/**
 * A current member claims an addition for `claimSeconds` (one claimer at a
 * time; its own claim again renews it; a lapsed one is anyone's). A settled
 * addition cannot be claimed: nothing is left to do.
 */
export async function claimPendingAddition(
  db: Db,
  args: { pendingAdditionId: string; caller: string; claimSeconds: number },
): Promise<ClaimOutcome> {
  const { convoId, id } = parseAdditionId(args.pendingAdditionId)
  return transact(db, async (trx) => {
    const { convo } = await requireMember(trx, convoId, args.caller)
    const { rows } = await sql<{
      status: PendingAdditionStatus
      claimed_by: string | null
      claim_live: boolean
      user_did: string
      device_id: string
    }>`
      SELECT status, claimed_by, coalesce(claimed_until > now(), false) AS claim_live, user_did, device_id
      FROM pending_device_addition WHERE convo_id = ${convo.id} AND id = ${id}::uuid
      FOR UPDATE`.execute(trx)
    const row = rows[0]
    if (!row) throw notFound('PendingAdditionNotFound', 'No such pending device addition in this conversation')
    const about = { groupId: convo.group_id.toLowerCase(), userDid: row.user_did, deviceId: row.device_id }
    if (row.status === 'completed' || row.status === 'cancelled') return { claimed: false, settled: true, ...about }
    const heldByOther = row.status === 'in_progress' && row.claim_live && row.claimed_by !== args.caller
    if (heldByOther && row.claimed_by) return { claimed: false, settled: false, claimedBy: row.claimed_by, ...about }
    await sql`
      UPDATE pending_device_addition
      SET status = 'in_progress', claimed_by = ${args.caller},
          claimed_until = now() + make_interval(secs => ${args.claimSeconds})
      WHERE convo_id = ${convo.id} AND id = ${id}::uuid`.execute(trx)
    return { claimed: true, convoId: convo.id, ...about }
  })
}

/**
 * The claimer says it added the device (at `newEpoch`). Settled already (by
 * the Welcome that added it, or the device's own external commit): done as
 * well. Claimed by another, or never claimed: NotClaimed.
 */
export async function completePendingAddition(
  db: Db,
  args: { pendingAdditionId: string; caller: string; newEpoch: number },
): Promise<void> {
  const { convoId, id } = parseAdditionId(args.pendingAdditionId)
  const { rows } = await sql<{ status: PendingAdditionStatus; claimed_by: string | null }>`
    WITH completed AS (
      UPDATE pending_device_addition
      SET status = 'completed', settled_at = now(), settled_by = 'complete', new_epoch = ${args.newEpoch}
      WHERE convo_id = ${convoId} AND id = ${id}::uuid AND status = 'in_progress' AND claimed_by = ${args.caller}
      RETURNING status, claimed_by
    )
    SELECT status, claimed_by FROM completed
    UNION ALL
    SELECT status, claimed_by FROM pending_device_addition
    WHERE convo_id = ${convoId} AND id = ${id}::uuid AND NOT EXISTS (SELECT 1 FROM completed)`.execute(db)
  const row = rows[0]
  if (!row) throw notFound('PendingAdditionNotFound', 'No such pending device addition')
  if (row.status === 'completed' || row.status === 'cancelled') return
  throw invalidRequest('NotClaimed', 'Claim this addition (claimPendingDeviceAddition) before completing it')
}

/**
 * The devices whose additions to a conversation `caller` holds a live claim
 * on: whose key packages its Welcome may name without listing their users
 * (the client-era clients add a member's device with an empty didList).
 */
export async function claimedAdditions(
  db: Db,
  args: { convoId: string; caller: string },
): Promise<Array<{ userDid: string; deviceId: string }>> {
  const rows = await db
    .selectFrom('pending_device_addition')
    .select(['user_did', 'device_id'])
    .where('convo_id', '=', args.convoId)
    .where('status', '=', 'in_progress')
    .where('claimed_by', '=', args.caller)
    .execute()
  return rows.map((row) => ({ userDid: row.user_did, deviceId: row.device_id }))
}

/**
 * A deleted device is added nowhere any more: its waiting additions are
 * cancelled, each on its conversation's shard (rare: a read across the
 * shards finds them, then one write per conversation).
 */
export async function cancelPendingAdditions(db: Db, args: { userDid: string; deviceId: string }): Promise<void> {
  const waiting = await db
    .selectFrom('pending_device_addition')
    .select('convo_id')
    .where('user_did', '=', args.userDid)
    .where('device_id', '=', args.deviceId)
    .where('status', 'in', ['pending', 'in_progress'])
    .execute()
  for (const { convo_id } of waiting) {
    await db
      .updateTable('pending_device_addition')
      .set({ status: 'cancelled', settled_at: sql`now()`, settled_by: 'device_deleted' })
      .where('convo_id', '=', convo_id)
      .where('user_did', '=', args.userDid)
      .where('device_id', '=', args.deviceId)
      .where('status', 'in', ['pending', 'in_progress'])
      .execute()
  }
}

/** The caller's registered device whose MLS leaves carry `signatureKey`, if one does (on the user's shard). */
export async function deviceOfLeaf(
  db: Db,
  args: { userDid: string; signatureKey: Uint8Array },
): Promise<string | undefined> {
  const row = await db
    .selectFrom('device')
    .select('device_id')
    .where('user_did', '=', args.userDid)
    .where('mls_signature_key', '=', args.signatureKey)
    .executeTakeFirst()
  return row?.device_id
}

/**
 * A device joined a conversation by its own external commit: it is in the
 * conversation, and its pending addition there is settled (inside the
 * commit's transaction, on the conversation's shard).
 */
export async function settleByExternalCommit(
  db: Db,
  args: { convoId: string; userDid: string; deviceId: string },
): Promise<void> {
  await sql`
    WITH device_in AS (
      INSERT INTO member_device (convo_id, user_did, device_id, joined_by)
      VALUES (${args.convoId}, ${args.userDid}, ${args.deviceId}, 'external_commit')
      -- The inserted row's time: Citus refuses a function in ON CONFLICT's SET.
      ON CONFLICT (convo_id, user_did, device_id) DO UPDATE SET joined_by = 'external_commit', joined_at = EXCLUDED.joined_at
    )
    UPDATE pending_device_addition SET status = 'completed', settled_at = now(), settled_by = 'external_commit'
    WHERE convo_id = ${args.convoId} AND user_did = ${args.userDid} AND device_id = ${args.deviceId}
      AND status IN ('pending', 'in_progress')`.execute(db)
}
