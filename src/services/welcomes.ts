import { sql, type RawBuilder } from 'kysely'
import type { Db } from '../db/index.js'
import { executePrepared } from '../db/prepared.js'
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

/** A key package a Welcome names, as its owner's shard answered for it. */
export interface ReservedKeyPackage {
  did: string
  /** Its KeyPackageRef, hex. */
  ref: string
  /** A last-resort package handed out to the caller: any number of Welcomes may use it. */
  lastResort: boolean
}

/** A Welcome, with what the owners of the key packages it names said of them (reserveWelcome). */
export interface ReservedWelcome extends Welcome {
  keyPackages: ReservedKeyPackage[]
  /** Why a key package it names cannot admit anyone to this conversation, if one cannot. */
  refusal?: string
}

/**
 * Reserves the key packages a Welcome names for the conversation it admits
 * to, on their owners' shards, before the conversation's transaction: one
 * statement per DID the request adds (side by side), each on one owner's
 * shard (issue 19), so the membership change itself writes on the
 * conversation's shard alone. A regular package is reserved when
 * getKeyPackages handed it out to `caller` and no other conversation's
 * Welcome reserved it: a key package opens one group. A last-resort one
 * handed out to `caller` (still its owner's: a replaced one is not) is only
 * found, not reserved. Whether each DID is named, and whether the
 * conversation already admitted by a package, is the membership change's
 * to say (checkAdmission, admissionCtes).
 *
 * A reservation outlives a change that failed (an epoch conflict, a refusal):
 * the caller's retry for the same conversation uses the same packages. It
 * runs again for a replayed request, finding the same packages; a refusal is
 * not thrown but kept, so a request answered before is replayed as it was.
 */
export async function reserveWelcome(
  db: Db,
  args: { convoId: string; caller: string; dids: string[]; welcome: Welcome | undefined },
): Promise<ReservedWelcome | undefined> {
  const { welcome } = args
  if (!welcome) return undefined
  const refs = [...new Map(welcome.keyPackageRefs.map((ref) => [refHex(ref), ref])).values()]
  const owners = await Promise.all(
    [...new Set(args.dids)].map(async (did) => {
      const { rows } = await executePrepared(
        db,
        'reserve_key_packages',
        sql<{ ref: string; last_resort: boolean }>`
      WITH reserved AS (
        UPDATE key_package SET reserved_convo_id = ${args.convoId}
        WHERE owner_did = ${did} AND ref = ANY(${refs}::bytea[]) AND consumed_by = ${args.caller}
          AND (reserved_convo_id IS NULL OR reserved_convo_id = ${args.convoId})
        RETURNING ref
      ), reused AS (
        SELECT h.ref FROM last_resort_handout h
        JOIN key_package kp ON kp.owner_did = ${did} AND kp.ref = h.ref AND kp.last_resort
        WHERE h.owner_did = ${did} AND h.ref = ANY(${refs}::bytea[]) AND h.claimed_by = ${args.caller}
      )
      SELECT encode(ref, 'hex') AS ref, false AS last_resort FROM reserved
      UNION ALL SELECT encode(ref, 'hex'), true FROM reused`,
      )
      return rows.map((row) => ({ did, ref: row.ref, lastResort: row.last_resort }))
    }),
  )
  const keyPackages = owners.flat()
  const found = new Set(keyPackages.map((kp) => kp.ref))
  const missing = refs.find((ref) => !found.has(refHex(ref)))
  const refusal = missing && (await whyNotReserved(db, args, missing))
  return { ...welcome, keyPackages, ...(refusal ? { refusal } : {}) }
}

/** Why a key package a Welcome names could not be reserved (only runs for refused Welcomes). */
async function whyNotReserved(
  db: Db,
  args: { convoId: string; caller: string; dids: string[] },
  ref: Uint8Array,
): Promise<string> {
  const named = `names key package ${refHex(ref)}`
  const notAdded = `${named}, which is not a key package of a member being added`
  if (args.dids.length === 0) return notAdded
  const kp = await db
    .selectFrom('key_package')
    .select(['consumed_by', 'reserved_convo_id'])
    .where('owner_did', 'in', args.dids)
    .where('ref', '=', ref)
    .executeTakeFirst()
  if (!kp) return notAdded
  if (kp.consumed_by !== args.caller) return `${named}, which getKeyPackages did not hand out to you`
  return `${named}, which a Welcome to another conversation already used`
}

/**
 * Admitting `added` to a conversation by `welcome`, the Welcome that follows
 * the commit built on `epoch`: it must be of the conversation's cipher
 * suite, and each key package it names must be one of an added DID's,
 * reserved for this conversation (reserveWelcome) and not used by another
 * of its Welcomes, or a last-resort one handed out to `caller`; every added
 * DID must be named. The Welcome is then stored for its recipients. So a
 * Welcome nobody could open is never stored, and no one is added without
 * one.
 */
export interface Admission {
  convoId: string
  cipherSuite: string
  caller: string
  added: string[]
  epoch: number
  welcome: ReservedWelcome | undefined
  retentionDays: number
}

/** An admission the checks that need no statement let through: its Welcome, and the regular key packages it uses. */
export interface CheckedAdmission extends Admission {
  welcome: ReservedWelcome
  regular: ReservedKeyPackage[]
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
  if (welcome.refusal) throw welcomeMismatch(welcome.refusal)
  // Reserved for a DID the request named, but one that is already a member.
  const stranger = welcome.keyPackages.find((kp) => !added.includes(kp.did))
  if (stranger)
    throw welcomeMismatch(`names key package ${stranger.ref}, which is not a key package of a member being added`)
  const named = new Set(welcome.keyPackages.map((kp) => kp.did))
  const unnamed = added.find((did) => !named.has(did))
  if (unnamed) throw welcomeMismatch(`names no key package of ${unnamed}, which is being added`)
  return { ...args, welcome, regular: welcome.keyPackages.filter((kp) => !kp.lastResort) }
}

/**
 * The CTEs of an admission, used inside a membership change's statement:
 * `admitted` records the regular key packages the Welcome uses, once per
 * conversation (a package reserved for it admits one Welcome; a last-resort
 * one, any number); the Welcome is stored once and delivered to each added
 * DID (a member added again, after leaving, gets the new Welcome from
 * scratch). Whether every package was admitted is `checkAdmitted`'s to say,
 * from `admittedColumn`.
 */
export function admissionCtes(args: CheckedAdmission): RawBuilder<unknown> {
  return sql`
    admitted AS (
      INSERT INTO admitted_key_package (convo_id, ref, owner_did, epoch)
      SELECT ${args.convoId}, kp.ref, kp.did, ${args.epoch}
      FROM unnest(${args.regular.map((kp) => Buffer.from(kp.ref, 'hex'))}::bytea[], ${args.regular.map((kp) => kp.did)}::text[]) AS kp(ref, did)
      ON CONFLICT (convo_id, ref) DO NOTHING
      RETURNING encode(ref, 'hex') AS ref
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

/** The statement's result column `admitted`: the refs (hex) of the regular key packages `admissionCtes` admitted. */
export const admittedColumn = sql`ARRAY(SELECT ref FROM admitted) AS admitted`

/**
 * After the statement: every regular key package the Welcome names was
 * admitted (none had admitted to this conversation before). Throws
 * otherwise; the statement's transaction then rolls back.
 */
export function checkAdmitted(args: CheckedAdmission, admitted: string[]): void {
  const used = args.regular.find((kp) => !admitted.includes(kp.ref))
  if (used) throw welcomeMismatch(`names key package ${used.ref}, which another Welcome already used`)
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
