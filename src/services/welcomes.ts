import { sql, type RawBuilder } from 'kysely'
import type { Db } from '../db/index.js'
import type { WelcomeState } from '../db/schema.js'
import { invalidRequest, notFound } from './errors.js'

/** A Welcome as the API read it: its bytes and what RFC 9420 leaves in the clear. */
export interface Welcome {
  data: Uint8Array
  cipherSuite: string
  /** The KeyPackageRefs its encrypted group secrets are for. */
  keyPackageRefs: Uint8Array[]
}

/**
 * Two-phase Welcome delivery. Per (conversation, recipient):
 *
 *   available --getWelcome--> in_flight --confirm(true)--> consumed
 *       ^                        |  \
 *       +----confirm(false)------+   +-- grace elapsed: the claim lapses
 *                                        (next fetch or the sweep)
 *
 * Every transition is one conditional UPDATE on a locked row, timed by the
 * database clock, so concurrent calls and several instances agree.
 */

const welcomeMismatch = (why: string) => invalidRequest('WelcomeMismatch', `The Welcome ${why}`)
const refHex = (ref: Uint8Array) => Buffer.from(ref).toString('hex')

/**
 * Admitting `added` to a conversation by `welcome`, the Welcome that follows
 * the commit built on `epoch`: it must be of the conversation's cipher
 * suite, and each of its encrypted group secrets must be for a key package
 * of one of the added DIDs that getKeyPackages handed out to `caller` and
 * no Welcome used yet (or for a last-resort package handed out to `caller`,
 * which any number of Welcomes may use); every added DID must be named.
 * Those key packages are bound to the commit, and the Welcome is stored for
 * its recipients. So a Welcome nobody could open is never stored, and no
 * one is added without one.
 */
export interface Admission {
  convoId: string
  cipherSuite: string
  caller: string
  added: string[]
  epoch: number
  welcome: Welcome | undefined
  retentionDays: number
}

/** An admission the checks that need no database let through: its Welcome, and the key package refs it names. */
export interface CheckedAdmission extends Admission {
  welcome: Welcome
  refs: Uint8Array[]
}

/** What can be checked of an admission before any statement; undefined when there is no one to admit and no Welcome. */
export function checkAdmission(args: Admission): CheckedAdmission | undefined {
  const { welcome, added } = args
  if (!welcome) {
    if (added.length === 0) return undefined
    throw invalidRequest(
      'KeyPackageNotFound',
      `No Welcome names a key package of ${added[0]}: get its key packages with getKeyPackages and send the Welcome that adds it`,
    )
  }
  if (welcome.cipherSuite !== args.cipherSuite) {
    throw welcomeMismatch(`is of cipher suite ${welcome.cipherSuite}, not the conversation's ${args.cipherSuite}`)
  }
  if (added.length === 0) throw welcomeMismatch('comes with no member to add')
  return { ...args, welcome, refs: [...new Map(welcome.keyPackageRefs.map((ref) => [refHex(ref), ref])).values()] }
}

/**
 * The CTEs of an admission, used inside a membership change's statement:
 * `bound` binds the key packages the Welcome names to the commit; `reused`
 * finds the last-resort ones it names that were handed out to the caller
 * (still their owners': a replaced one is not), which are not bound, as any
 * number of Welcomes may use them; the Welcome is stored once and delivered
 * to each added DID (a member added again, after leaving, gets the new
 * Welcome from scratch). Whether every package was admitted is
 * `checkAdmitted`'s to say, from `boundColumn`.
 */
export function admissionCtes(args: CheckedAdmission): RawBuilder<unknown> {
  return sql`
    bound AS (
      UPDATE key_package SET used_convo_id = ${args.convoId}, used_epoch = ${args.epoch}
      WHERE owner_did = ANY(${args.added}::text[]) AND ref = ANY(${args.refs}::bytea[])
        AND consumed_by = ${args.caller} AND used_convo_id IS NULL
      RETURNING owner_did, ref
    ), reused AS (
      SELECT h.owner_did, h.ref FROM last_resort_handout h
      JOIN key_package kp ON kp.owner_did = h.owner_did AND kp.ref = h.ref AND kp.last_resort
      WHERE h.owner_did = ANY(${args.added}::text[]) AND h.ref = ANY(${args.refs}::bytea[]) AND h.claimed_by = ${args.caller}
    ), welcomed AS (
      INSERT INTO welcome (convo_id, data) VALUES (${args.convoId}, ${args.welcome.data}) RETURNING id
    ), delivered AS (
      INSERT INTO welcome_delivery (convo_id, recipient_did, welcome_id, expires_at)
      SELECT ${args.convoId}, did, welcomed.id, now() + make_interval(days => ${args.retentionDays})
      FROM unnest(${args.added}::text[]) AS did, welcomed
      ON CONFLICT (convo_id, recipient_did) DO UPDATE SET
        welcome_id = EXCLUDED.welcome_id, state = 'available', created_at = EXCLUDED.created_at,
        expires_at = EXCLUDED.expires_at, fetched_at = NULL, fetch_count = 0, consumed_at = NULL,
        consumed_via = NULL, failure_count = 0, last_error = NULL
    )`
}

/** A key package `admissionCtes` admitted (bound, or a last-resort one reused): its owner and ref (hex). */
export interface BoundKeyPackage {
  did: string
  ref: string
}

/** The statement's result column `bound`: the key packages `admissionCtes` admitted. */
export const boundColumn = sql`ARRAY(
  SELECT json_build_object('did', owner_did, 'ref', encode(ref, 'hex')) FROM (SELECT * FROM bound UNION ALL SELECT * FROM reused) admitted
) AS bound`

/**
 * After the statement: every key package the Welcome names was admitted, and
 * every added DID named. Throws otherwise; the statement's transaction then
 * rolls back.
 */
export async function checkAdmitted(trx: Db, args: CheckedAdmission, bound: BoundKeyPackage[]): Promise<void> {
  if (bound.length < args.refs.length) {
    const boundRefs = new Set(bound.map((kp) => kp.ref))
    const missing = args.refs.find((ref) => !boundRefs.has(refHex(ref))) as Uint8Array
    throw welcomeMismatch(await whyNotBound(trx, args.caller, args.added, missing))
  }
  const named = new Set(bound.map((kp) => kp.did))
  const unnamed = args.added.find((did) => !named.has(did))
  if (unnamed) throw welcomeMismatch(`names no key package of ${unnamed}, which is being added`)
}

/** Why a key package the Welcome names could not be bound (only runs for refused Welcomes). */
async function whyNotBound(trx: Db, caller: string, added: string[], ref: Uint8Array): Promise<string> {
  const kp = await trx
    .selectFrom('key_package')
    .select('consumed_by')
    .where('owner_did', 'in', added)
    .where('ref', '=', ref)
    .executeTakeFirst()
  const named = `names key package ${refHex(ref)}`
  if (!kp) return `${named}, which is not a key package of a member being added`
  if (kp.consumed_by !== caller) return `${named}, which getKeyPackages did not hand out to you`
  return `${named}, which another Welcome already used`
}

/**
 * The recipient acted in the conversation (sent a message or a commit), so it
 * has joined: its pending Welcome is settled. Used inside larger statements.
 */
export function settleWelcomeByActivity(convoId: string, did: string): RawBuilder<unknown> {
  return sql`
    UPDATE welcome_delivery
    SET state = 'consumed', consumed_at = now(), consumed_via = 'message'
    WHERE convo_id = ${convoId} AND recipient_did = ${did} AND state <> 'consumed'`
}

const welcomeNotFound = () => notFound('WelcomeNotFound', 'No Welcome message is waiting for you in this conversation')

/**
 * A fetch hands the Welcome out (first time, again within grace, or again
 * after the claim lapsed), or finds it already consumed: an answer the caller
 * expects on a retry, not a failure.
 */
export type FetchOutcome =
  { event: 'fetched' | 'refetched_in_grace' | 'claim_lapsed'; data: Uint8Array } | { event: 'already_consumed' }

export async function fetchWelcome(
  db: Db,
  args: { convoId: string; did: string; graceSeconds: number },
): Promise<FetchOutcome> {
  const grace = sql`make_interval(secs => ${args.graceSeconds})`
  const { rows } = await sql<{ data: Uint8Array; previous: WelcomeState; in_grace: boolean }>`
    WITH current AS (
      -- The clock is read here: Citus evaluates no volatile function inside a conditional.
      SELECT convo_id, recipient_did, state, fetched_at > now() - ${grace} AS in_grace, now() AS now
      FROM welcome_delivery
      WHERE convo_id = ${args.convoId} AND recipient_did = ${args.did}
        AND state <> 'consumed' AND expires_at > now()
      FOR UPDATE
    )
    UPDATE welcome_delivery d
    SET state = 'in_flight',
        -- A retry within grace keeps the first fetch time: grace is not extended.
        fetched_at = CASE WHEN current.state = 'in_flight' AND current.in_grace
                          THEN d.fetched_at ELSE current.now END,
        fetch_count = d.fetch_count + 1
    FROM current, welcome w
    WHERE d.convo_id = ${args.convoId} AND d.recipient_did = current.recipient_did
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
    .where('state', '=', 'consumed')
    .executeTakeFirst()
  if (consumed) return { event: 'already_consumed' }
  throw welcomeNotFound()
}

export type ConfirmOutcome = 'confirmed_success' | 'confirmed_failure' | 'already_consumed'

export async function confirmWelcome(
  db: Db,
  args: { convoId: string; did: string; success: boolean; errorDetails?: string },
): Promise<ConfirmOutcome> {
  const { rows } = await sql<{ previous: WelcomeState }>`
    WITH current AS (
      SELECT convo_id, recipient_did, state, now() AS now FROM welcome_delivery
      WHERE convo_id = ${args.convoId} AND recipient_did = ${args.did}
      FOR UPDATE
    )
    UPDATE welcome_delivery d
    SET state = CASE WHEN ${args.success} THEN 'consumed' ELSE 'available' END,
        consumed_at = CASE WHEN ${args.success} THEN current.now END,
        consumed_via = CASE WHEN ${args.success} THEN 'confirm' END,
        failure_count = d.failure_count + CASE WHEN ${args.success} THEN 0 ELSE 1 END,
        last_error = CASE WHEN ${args.success} THEN d.last_error ELSE ${args.errorDetails ?? null} END
    FROM current
    WHERE d.convo_id = ${args.convoId} AND d.recipient_did = current.recipient_did
      -- Fetched at least once: in flight, or lapsed/failed back to available.
      AND current.state <> 'consumed' AND d.fetched_at IS NOT NULL
    RETURNING current.state AS previous
  `.execute(db)
  if (rows[0]) return args.success ? 'confirmed_success' : 'confirmed_failure'

  const delivery = await db
    .selectFrom('welcome_delivery')
    .select(['state'])
    .where('convo_id', '=', args.convoId)
    .where('recipient_did', '=', args.did)
    .executeTakeFirst()
  if (!delivery) throw welcomeNotFound()
  if (delivery.state === 'consumed') return 'already_consumed'
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
    WHERE ${lapsedClaim} AND (convo_id, recipient_did) IN (
      SELECT convo_id, recipient_did FROM welcome_delivery WHERE ${lapsedClaim} LIMIT ${args.batchSize}
    )`.execute(db)
  const ended = sql`state <> 'consumed' AND expires_at <= now()`
  const expired = await sql`
    DELETE FROM welcome_delivery
    WHERE ${ended} AND (convo_id, recipient_did) IN (
      SELECT convo_id, recipient_did FROM welcome_delivery WHERE ${ended} LIMIT ${args.batchSize}
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
