/**
 * Two-phase Welcome delivery. Per (conversation, recipient, device):
 *
 *   available --getWelcome--> in_flight --confirm(true)--> consumed
 *       ^                        |  \
 *       +----confirm(false)------+   +-- grace elapsed: the claim lapses
 *                                        (next fetch or the sweep)
 *
 * Every transition is one conditional UPDATE on a locked row, timed by the
 * database clock, so concurrent calls and several instances agree.
 *
 * A Welcome naming several of a user's devices has a delivery for each,
 * but tokens name only the user, so the server cannot tell which device
 * calls unless it says (`deviceId`: its server id or its MLS DID). A fetch
 * from an unnamed device takes the delivery least taken (not in flight, then
 * fewest failures, then oldest): each device's fetch takes its own, and a
 * device that got another's Welcome and reports the failure puts that one
 * back. A confirmation settles one delivery in flight (the last fetched), a
 * failure puts one back: so one device's confirmation or failure never takes
 * the Welcome from another device it names that has not joined yet, since
 * the user's deliveries outnumber its confirmations until each device
 * confirmed. Activity (a message) settles a user's Welcome only when it has
 * one delivery left: a message proves that some device joined, not which.
 */
import { sql, type RawBuilder } from 'kysely'
import type { Db, WelcomeState } from '../db/schema.js'
import { invalidRequest, notFound } from './errors.js'

/**
 * The step that settles the sender's pending Welcome when it acts in the
 * conversation (sends a message or a commit), which proves it joined: when
 * it is its only one. Part of a write's steps (src/db/steps.ts).
 */
export function settleWelcomeByActivity(
  convoId: string,
  did: string,
): { update: string; set: RawBuilder<unknown>; where: RawBuilder<unknown> } {
  return {
    update: 'welcome_delivery',
    set: sql`state = 'consumed', consumed_at = now(), consumed_via = 'message'`,
    where: sql`convo_id = ${convoId} AND recipient_did = ${did} AND state <> 'consumed'
      AND (SELECT count(*) FROM welcome_delivery p
           WHERE p.convo_id = ${convoId} AND p.recipient_did = ${did} AND p.state <> 'consumed') = 1`,
  }
}

const welcomeNotFound = () => notFound('WelcomeNotFound', 'No Welcome message is waiting for you in this conversation')

/** Which of a user's deliveries a call is about: a named device's, or any (see the header). */
const ofDevice = (deviceId: string | undefined) => (deviceId === undefined ? sql`` : sql` AND device_id = ${deviceId}`)

/**
 * A fetch hands the Welcome out (first time, again within grace, or again
 * after the claim lapsed), or finds it already consumed: an answer the caller
 * expects on a retry, not a failure.
 */
export type FetchOutcome =
  { event: 'fetched' | 'refetched_in_grace' | 'claim_lapsed'; data: Uint8Array } | { event: 'already_consumed' }

export async function fetchWelcome(
  db: Db,
  args: { convoId: string; did: string; deviceId?: string | undefined; graceSeconds: number },
): Promise<FetchOutcome> {
  const grace = sql`make_interval(secs => ${args.graceSeconds})`
  const { rows } = await sql<{ data: Uint8Array; previous: WelcomeState; in_grace: boolean }>`
    WITH current AS (
      -- The clock is read here: Citus evaluates no volatile function inside a conditional.
      SELECT convo_id, recipient_did, device_id, state, fetched_at > now() - ${grace} AS in_grace, now() AS now
      FROM welcome_delivery
      WHERE convo_id = ${args.convoId} AND recipient_did = ${args.did}${ofDevice(args.deviceId)}
        AND state <> 'consumed' AND expires_at > now()
      ORDER BY state = 'in_flight' AND fetched_at > now() - ${grace}, failure_count, created_at, device_id
      LIMIT 1
      FOR UPDATE
    )
    UPDATE welcome_delivery d
    SET state = 'in_flight',
        -- A retry within grace keeps the first fetch time: grace is not extended.
        fetched_at = CASE WHEN current.state = 'in_flight' AND current.in_grace
                          THEN d.fetched_at ELSE current.now END,
        fetch_count = d.fetch_count + 1
    FROM current, welcome w
    WHERE d.convo_id = ${args.convoId} AND d.recipient_did = current.recipient_did AND d.device_id = current.device_id
      AND w.convo_id = ${args.convoId} AND w.id = d.welcome_id
    RETURNING w.data, current.state AS previous, coalesce(current.in_grace, false) AS in_grace
  `.execute(db)
  const row = rows[0]
  if (row) {
    const event = row.previous === 'available' ? 'fetched' : row.in_grace ? 'refetched_in_grace' : 'claim_lapsed'
    return { data: row.data, event }
  }
  const consumed = await db
    .selectFrom('welcome_delivery')
    .select('state')
    .where('convo_id', '=', args.convoId)
    .where('recipient_did', '=', args.did)
    .$if(args.deviceId !== undefined, (qb) => qb.where('device_id', '=', args.deviceId as string))
    .where('state', '=', 'consumed')
    .executeTakeFirst()
  if (consumed) return { event: 'already_consumed' }
  throw welcomeNotFound()
}

export type ConfirmOutcome = 'confirmed_success' | 'confirmed_failure' | 'already_consumed'

/**
 * The recipient says how processing its fetched Welcome went: consumed, or
 * kept for a retry (the error recorded). Answers which Welcome it was.
 */
export async function confirmWelcome(
  db: Db,
  args: {
    convoId: string
    did: string
    deviceId?: string | undefined
    success: boolean
    errorDetails?: string | undefined
  },
): Promise<{ outcome: ConfirmOutcome; welcomeId?: number }> {
  const { rows } = await sql<{ welcome_id: number }>`
    WITH current AS (
      SELECT convo_id, recipient_did, device_id, now() AS now FROM welcome_delivery
      WHERE convo_id = ${args.convoId} AND recipient_did = ${args.did}${ofDevice(args.deviceId)}
        -- Fetched at least once: in flight, or lapsed/failed back to available.
        AND state <> 'consumed' AND fetched_at IS NOT NULL
      ORDER BY state = 'in_flight' DESC, fetched_at DESC, device_id
      LIMIT 1
      FOR UPDATE
    )
    UPDATE welcome_delivery d
    SET state = CASE WHEN ${args.success} THEN 'consumed' ELSE 'available' END,
        consumed_at = CASE WHEN ${args.success} THEN current.now END,
        consumed_via = CASE WHEN ${args.success} THEN 'confirm' END,
        failure_count = d.failure_count + CASE WHEN ${args.success} THEN 0 ELSE 1 END,
        last_error = CASE WHEN ${args.success} THEN d.last_error ELSE ${args.errorDetails ?? null} END
    FROM current
    WHERE d.convo_id = ${args.convoId} AND d.recipient_did = current.recipient_did AND d.device_id = current.device_id
    RETURNING d.welcome_id
  `.execute(db)
  const confirmed = rows[0]
  if (confirmed) {
    return { outcome: args.success ? 'confirmed_success' : 'confirmed_failure', welcomeId: confirmed.welcome_id }
  }
  const deliveries = await db
    .selectFrom('welcome_delivery')
    .select(['state'])
    .where('convo_id', '=', args.convoId)
    .where('recipient_did', '=', args.did)
    .$if(args.deviceId !== undefined, (qb) => qb.where('device_id', '=', args.deviceId as string))
    .execute()
  if (deliveries.length === 0) throw welcomeNotFound()
  if (deliveries.every((d) => d.state === 'consumed')) return { outcome: 'already_consumed' }
  throw invalidRequest('WelcomeNotFetched', 'This Welcome was never fetched; call getWelcome before confirming it')
}

export interface SweepResult {
  lapsed: number
  expired: number
  welcomesDeleted: number
}

/**
 * One bounded pass of the Welcome sweep. Each statement picks a batch (no
 * row locks: a distributed table takes none across shards) and acts on the
 * rows that still qualify when it gets them: a delivery confirmed meanwhile
 * is left alone, and an instance sweeping at once waits for a row, then
 * passes it by.
 */
export async function sweepWelcomes(
  db: Db,
  args: { graceSeconds: number; retentionDays: number; batchSize: number },
): Promise<SweepResult> {
  const lapsedClaim = sql`state = 'in_flight' AND fetched_at <= now() - make_interval(secs => ${args.graceSeconds})`
  const lapsed = await sql`
    UPDATE welcome_delivery SET state = 'available'
    WHERE ${lapsedClaim} AND (convo_id, recipient_did, device_id) IN (
      SELECT convo_id, recipient_did, device_id FROM welcome_delivery WHERE ${lapsedClaim} LIMIT ${args.batchSize}
    )`.execute(db)
  const ended = sql`state <> 'consumed' AND expires_at <= now()`
  const expired = await sql`
    DELETE FROM welcome_delivery
    WHERE ${ended} AND (convo_id, recipient_did, device_id) IN (
      SELECT convo_id, recipient_did, device_id FROM welcome_delivery WHERE ${ended} LIMIT ${args.batchSize}
    )`.execute(db)
  // Welcome bytes past retention go too, with the consumed deliveries that
  // pointed at them (so a very late fetch answers 404, not 410).
  const deleted = await sql`
    DELETE FROM welcome WHERE (convo_id, id) IN (
      SELECT convo_id, id FROM welcome
      WHERE created_at <= now() - make_interval(days => ${args.retentionDays})
      LIMIT ${args.batchSize}
    )`.execute(db)
  return {
    lapsed: Number(lapsed.numAffectedRows ?? 0),
    expired: Number(expired.numAffectedRows ?? 0),
    welcomesDeleted: Number(deleted.numAffectedRows ?? 0),
  }
}
