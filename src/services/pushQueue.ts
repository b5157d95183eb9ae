/**
 * The push queue. A push is queued by the very statement that stores what it
 * is about (a message, a commit, a Welcome), in `push_outbox` on the
 * conversation's shard: it commits with it or not at all. A worker claims
 * queued pushes for a lease (`claimed_by`, `claimed_until`: another instance
 * takes them only once the lease has run out), finds the devices to push to,
 * sends, and then, in one transaction, deletes them, keeps what APNs could
 * not take yet in `push_retry` (on the device's user's shard) and forgets the
 * tokens APNs said are dead. A worker that stops mid-way leaves its pushes
 * claimed: they are sent again when the lease runs out, each with the same
 * apns-id. Claims pick a batch, then take the rows still unclaimed when they
 * get them (no row locks: a distributed table takes none across shards), so
 * two instances never hold the same push.
 */
import { sql, type RawBuilder, type Selectable } from 'kysely'
import type { Step } from '../db/steps.js'
import type { Db, PushKind, PushRetryTable } from '../db/schema.js'
import { transact } from '../db/transaction.js'

/** What writes queue for push notifications, when push is on. */
export interface PushQueueing {
  /** Commits too, besides messages and Welcomes. */
  commits: boolean
}

/** The step that queues a push of the message that `inserted` stored (among messageSteps). */
export function queueMessagePushStep(
  kind: 'message' | 'commit',
  v: { convoId: string; senderDevice: string | null },
): Step {
  return {
    name: 'pushed',
    insert: 'push_outbox',
    uses: ['inserted'],
    values: { convo_id: v.convoId, seq: sql`inserted.seq`, kind: sql.lit(kind), sender_device_id: v.senderDevice },
  }
}

/**
 * The step that queues a push of a Welcome to each device it is delivered to
 * (among a membership change's steps, beside its welcome_delivery rows), at
 * the seq of the step `at`: the commit that added them (`inserted`), or the
 * conversation's last when none came.
 */
export function queueWelcomePushStep(
  v: { convoId: string; recipients: string[]; recipientDevices: string[] },
  at: 'inserted' | 'at_last',
): Step {
  return {
    name: 'welcome_pushed',
    insert: 'push_outbox',
    uses: [at],
    values: {
      convo_id: v.convoId,
      seq: sql`${sql.raw(at)}.seq`,
      kind: sql`'welcome'`,
      recipients: sql`${v.recipients}::text[]`,
      recipient_devices: sql`${v.recipientDevices}::text[]`,
    },
    tail: sql`ON CONFLICT DO NOTHING`,
  }
}

/** A queued push, as claimed. */
export interface QueuedPush {
  convo_id: string
  seq: number
  kind: PushKind
  sender_device_id: string | null
  recipients: string[] | null
  recipient_devices: string[] | null
  created_at: Date
}

export interface Claim {
  /** This pass's own id (a UUID): what it claimed is what it finishes. */
  claimId: string
  leaseSeconds: number
  limit: number
}

const unclaimed = sql`(claimed_until IS NULL OR claimed_until <= now())`
const lease = (claim: Claim) => sql`now() + make_interval(secs => ${claim.leaseSeconds})`

/** Claims the oldest unclaimed pushes (or those whose lease ran out). */
export async function claimQueuedPushes(db: Db, claim: Claim): Promise<QueuedPush[]> {
  const { rows } = await sql<QueuedPush>`
    UPDATE push_outbox SET claimed_by = ${claim.claimId}, claimed_until = ${lease(claim)}
    WHERE ${unclaimed} AND (convo_id, seq, kind) IN (
      SELECT convo_id, seq, kind FROM push_outbox WHERE ${unclaimed} ORDER BY created_at LIMIT ${claim.limit}
    )
    RETURNING convo_id, seq, kind, sender_device_id, recipients, recipient_devices, created_at`.execute(db)
  return rows
}

/** One device a queued push goes to, and what the push is about. */
export interface PushTarget {
  convoId: string
  seq: number
  kind: PushKind
  createdAt: Date
  /** The conversation's MLS group id, lowercase hex. */
  groupId: string
  userDid: string
  deviceId: string
  token: string
  /** A message's or commit's. */
  message?: {
    id: string
    epoch: number
    /** Read only when it is at most `maxCiphertextBytes` long. */
    ciphertext: Uint8Array | null
  }
}

/**
 * The devices each push goes to: for a message or commit, every registered
 * iOS device of every current member who may read it (joined before it),
 * except the sending device, or all of the sender's devices when the sender
 * named none; for a Welcome, each device it is delivered to (every device
 * of a user whose delivery names none) of users who are still members.
 */
export async function pushTargets(
  db: Db,
  pushes: QueuedPush[],
  opts: { maxCiphertextBytes: number },
): Promise<PushTarget[]> {
  if (pushes.length === 0) return []
  const convoIds = [...new Set(pushes.map((p) => p.convo_id))]
  const messagePushes = pushes.filter((p) => p.kind !== 'welcome')
  const [convos, members, messages] = await Promise.all([
    db
      .selectFrom('convo')
      .select(['id', sql<string>`lower(group_id)`.as('group_id')])
      .where('id', 'in', convoIds)
      .execute(),
    db
      .selectFrom('member')
      .select(['convo_id', 'did', 'joined_seq'])
      .where('convo_id', 'in', convoIds)
      .where('left_at', 'is', null)
      .execute(),
    messagePushes.length === 0
      ? []
      : sql<{
          convo_id: string
          seq: number
          id: string
          epoch: number
          sender_did: string
          ciphertext: Buffer | null
        }>`
          SELECT convo_id, seq, coalesce(msg_id, id::text) AS id, epoch, sender_did,
                 CASE WHEN octet_length(ciphertext) <= ${opts.maxCiphertextBytes} THEN ciphertext END AS ciphertext
          FROM message
          WHERE (convo_id, seq) IN (
            SELECT * FROM unnest(${messagePushes.map((p) => p.convo_id)}::text[], ${messagePushes.map((p) => p.seq)}::bigint[])
          )`
          .execute(db)
          .then((r) => r.rows),
  ])
  const groupIds = new Map(convos.map((c) => [c.id, c.group_id]))
  const joinedSeq = new Map(members.map((m) => [`${m.convo_id} ${m.did}`, m.joined_seq]))
  const messageAt = new Map(messages.map((m) => [`${m.convo_id} ${m.seq}`, m]))

  // Who each push is for (user DIDs), and which of their devices it goes to.
  interface Wanted {
    push: QueuedPush
    groupId: string
    users: string[]
    takes: (did: string, deviceId: string) => boolean
    message?: (typeof messages)[number]
  }
  const wanted = pushes.flatMap((push): Wanted[] => {
    const groupId = groupIds.get(push.convo_id)
    if (groupId === undefined) return []
    if (push.kind === 'welcome') {
      // The devices the Welcome is delivered to; one the server does not know stands for all of its user's.
      const devices = new Map<string, Set<string>>()
      const recipientDevices = push.recipient_devices ?? []
      ;(push.recipients ?? []).forEach((did, i) => {
        if (!joinedSeq.has(`${push.convo_id} ${did}`)) return
        devices.set(did, (devices.get(did) ?? new Set()).add(recipientDevices[i] ?? ''))
      })
      const takes = (did: string, deviceId: string) => {
        const named = devices.get(did)
        return named !== undefined && (named.has('') || named.has(deviceId))
      }
      return [{ push, groupId, users: [...devices.keys()], takes }]
    }
    const message = messageAt.get(`${push.convo_id} ${push.seq}`)
    if (!message) return []
    const users = members
      .filter((m) => m.convo_id === push.convo_id && m.joined_seq < push.seq)
      .map((m) => m.did)
      .filter((did) => did !== message.sender_did || push.sender_device_id !== null)
    const takes = (did: string, deviceId: string) => did !== message.sender_did || deviceId !== push.sender_device_id
    return [{ push, groupId, users, takes, message }]
  })
  const dids = [...new Set(wanted.flatMap((w) => w.users))]
  if (dids.length === 0) return []
  const tokens = await db
    .selectFrom('push_token')
    .select(['user_did', 'device_id', 'token'])
    .where('user_did', 'in', dids)
    .where('platform', '=', 'ios')
    .execute()
  const devicesOf = new Map<string, typeof tokens>()
  for (const t of tokens) devicesOf.set(t.user_did, [...(devicesOf.get(t.user_did) ?? []), t])
  return wanted.flatMap(({ push, groupId, users, takes, message }) =>
    users.flatMap((did) =>
      (devicesOf.get(did) ?? [])
        .filter((device) => takes(did, device.device_id))
        .map((device) => ({
          convoId: push.convo_id,
          seq: push.seq,
          kind: push.kind,
          createdAt: push.created_at,
          groupId,
          userDid: did,
          deviceId: device.device_id,
          token: device.token,
          ...(message ? { message: { id: message.id, epoch: message.epoch, ciphertext: message.ciphertext } } : {}),
        })),
    ),
  )
}

/** A device's push to keep for another attempt: as it was sent. */
export interface PushToRetry {
  userDid: string
  deviceId: string
  apnsId: string
  pushType: string
  priority: number
  collapseId: string | null
  payload: string
  expiresAt: Date
  /** Attempts made so far. */
  attempts: number
  /** How long to wait before the next one. */
  delayMs: number
  lastError: string
}

/** A token APNs said is no longer valid (its reason), since when if it said. */
export interface DeadToken {
  userDid: string
  deviceId: string
  token: string
  reason: string
  invalidSince?: Date | undefined
}

/**
 * Forgets dead tokens (each only as long as it is still the device's, and
 * registered before APNs found it invalid: one the device registered again
 * since stays); answers those that went. Few at a time: one statement each.
 */
async function clearTokens(trx: Db, dead: DeadToken[]): Promise<DeadToken[]> {
  const cleared: DeadToken[] = []
  for (const t of dead) {
    const result = await trx
      .deleteFrom('push_token')
      .where('user_did', '=', t.userDid)
      .where('device_id', '=', t.deviceId)
      .where('token', '=', t.token)
      .$if(t.invalidSince !== undefined, (qb) => qb.where('registered_at', '<', t.invalidSince as Date))
      .executeTakeFirst()
    if (result.numDeletedRows > 0n) cleared.push(t)
  }
  return cleared
}

const retryRow = (r: PushToRetry, claimed: { next: RawBuilder<Date> }) => ({
  user_did: r.userDid,
  device_id: r.deviceId,
  apns_id: r.apnsId,
  push_type: r.pushType,
  priority: r.priority,
  collapse_id: r.collapseId,
  payload: r.payload,
  expires_at: r.expiresAt,
  attempts: r.attempts,
  next_attempt_at: claimed.next,
  last_error: r.lastError,
})

const after = (ms: number) => sql<Date>`now() + make_interval(secs => ${ms / 1000})`

/**
 * Ends a pass over claimed pushes, in one transaction: they leave the queue
 * (only if this pass still holds them), the dead tokens go, and the pushes
 * to send again are kept for their devices that still have a token.
 * Answers the tokens forgotten.
 */
export async function finishClaimedPushes(
  db: Db,
  args: { claimId: string; retries: PushToRetry[]; dead: DeadToken[] },
): Promise<DeadToken[]> {
  return transact(db, async (trx) => {
    await trx.deleteFrom('push_outbox').where('claimed_by', '=', args.claimId).execute()
    const cleared = await clearTokens(trx, args.dead)
    const gone = new Set(args.dead.map((t) => `${t.userDid} ${t.deviceId}`))
    const kept = args.retries.filter((r) => !gone.has(`${r.userDid} ${r.deviceId}`))
    if (kept.length > 0) {
      await trx
        .insertInto('push_retry')
        .values(kept.map((r) => retryRow(r, { next: after(r.delayMs) })))
        // Sent again after a restart, and refused again: kept once.
        .onConflict((oc) => oc.doNothing())
        .execute()
    }
    return cleared
  })
}

/** A push due for another attempt, as it was sent, with its device's current token. */
export type DueRetry = Pick<
  Selectable<PushRetryTable>,
  | 'user_did'
  | 'device_id'
  | 'apns_id'
  | 'push_type'
  | 'priority'
  | 'collapse_id'
  | 'payload'
  | 'expires_at'
  | 'attempts'
> & { token: string }

/** Claims the pushes due for another attempt, oldest due first. */
export async function claimDueRetries(db: Db, claim: Claim): Promise<DueRetry[]> {
  const due = sql`${unclaimed} AND next_attempt_at <= now()`
  const { rows } = await sql<DueRetry>`
    UPDATE push_retry r SET claimed_by = ${claim.claimId}, claimed_until = ${lease(claim)}
    FROM push_token t
    WHERE t.user_did = r.user_did AND t.device_id = r.device_id AND ${due}
      AND (r.user_did, r.device_id, r.apns_id) IN (
        SELECT user_did, device_id, apns_id FROM push_retry WHERE ${due} ORDER BY next_attempt_at LIMIT ${claim.limit}
      )
    RETURNING r.user_did, r.device_id, r.apns_id, r.push_type, r.priority, r.collapse_id, r.payload, r.expires_at,
              r.attempts, t.token`.execute(db)
  return rows
}

export interface RetryKey {
  userDid: string
  deviceId: string
  apnsId: string
}

/**
 * Ends a pass over claimed retries, in one transaction: those done (sent,
 * dropped) go, those to try again wait their delay, dead tokens go (with
 * their devices' retries).
 */
export async function finishClaimedRetries(
  db: Db,
  args: {
    claimId: string
    done: RetryKey[]
    again: Array<RetryKey & { delayMs: number; lastError: string }>
    dead: DeadToken[]
  },
): Promise<DeadToken[]> {
  const mine = (key: RetryKey) =>
    sql<boolean>`user_did = ${key.userDid} AND device_id = ${key.deviceId} AND apns_id = ${key.apnsId}::uuid AND claimed_by = ${args.claimId}::uuid`
  return transact(db, async (trx) => {
    for (const key of args.done) await trx.deleteFrom('push_retry').where(mine(key)).execute()
    for (const retry of args.again) {
      await trx
        .updateTable('push_retry')
        .set((eb) => ({
          attempts: eb('attempts', '+', 1),
          next_attempt_at: after(retry.delayMs),
          last_error: retry.lastError,
          claimed_by: null,
          claimed_until: null,
        }))
        .where(mine(retry))
        .execute()
    }
    return clearTokens(trx, args.dead)
  })
}

/** How many pushes wait (queued, and to be retried), and for how long the oldest has. */
export async function pushQueueStats(db: Db): Promise<{ queued: number; retrying: number; oldestSeconds: number }> {
  const { rows } = await sql<{ queued: number; retrying: number; oldest_seconds: number }>`
    SELECT (SELECT count(*) FROM push_outbox)::int AS queued,
           (SELECT count(*) FROM push_retry)::int AS retrying,
           coalesce(extract(epoch FROM now() - least(
             (SELECT min(created_at) FROM push_outbox), (SELECT min(created_at) FROM push_retry)
           )), 0)::float8 AS oldest_seconds`.execute(db)
  const row = rows[0] as { queued: number; retrying: number; oldest_seconds: number }
  return { queued: row.queued, retrying: row.retrying, oldestSeconds: row.oldest_seconds }
}
