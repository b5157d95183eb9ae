/**
 * Admission: a Welcome's key packages, reserved on their owners' shards
 * before a membership change (reserveWelcome), then checked and recorded on
 * the conversation's shard by the change's own write (checkAdmission,
 * admissionSteps, checkAdmitted), so that a membership change writes on one
 * shard. A key package opens one conversation; a Welcome nobody could open
 * is never stored; no one is added without one.
 *
 * A Welcome may name several key packages of one user (one per device) and
 * packages of current members' new devices (a device addition adds no
 * user). It is delivered to each device it names: one delivery per
 * (recipient, device), the device empty for a package bound to no device.
 */
import { sql, type RawBuilder } from 'kysely'
import type { Db } from '../db/schema.js'
import { execute, statement } from '../db/statement.js'
import type { Step, StepRefs } from '../db/steps.js'
import { invalidRequest } from './errors.js'

/** A Welcome as the API read it: its bytes and what RFC 9420 leaves in the clear. */
export interface Welcome {
  data: Uint8Array
  cipherSuite: string
  /** The KeyPackageRefs its encrypted group secrets are for. */
  keyPackageRefs: Uint8Array[]
}

const welcomeMismatch = (why: string) => invalidRequest('WelcomeMismatch', `The Welcome ${why}`)
const refHex = (ref: Uint8Array) => Buffer.from(ref).toString('hex')

/** A key package a Welcome names, as its owner's shard answered for it. */
export interface ReservedKeyPackage {
  did: string
  /** Its KeyPackageRef, hex. */
  ref: string
  /** A last-resort package handed out to the caller: any number of Welcomes may use it. */
  lastResort: boolean
  /** The registered device it belongs to, if the server knows it. */
  deviceId: string | null
}

/** A Welcome, with what the owners of the key packages it names said of them (reserveWelcome). */
export interface ReservedWelcome extends Welcome {
  keyPackages: ReservedKeyPackage[]
  /** Why a key package it names cannot admit anyone to this conversation, if one cannot. */
  refusal?: string
}

const keyPackageReservation = statement(
  'reserve_key_packages',
  (v: { did: string; refs: Uint8Array[]; convoId: string; caller: string }) => sql<{
    ref: string
    last_resort: boolean
    device_id: string | null
  }>`
    WITH reserved AS (
      UPDATE key_package SET reserved_convo_id = ${v.convoId}
      WHERE owner_did = ${v.did} AND ref = ANY(${v.refs}::bytea[]) AND consumed_by = ${v.caller}
        AND (reserved_convo_id IS NULL OR reserved_convo_id = ${v.convoId})
      RETURNING ref, device_id
    ), reused AS (
      SELECT h.ref, kp.device_id FROM last_resort_handout h
      JOIN key_package kp ON kp.owner_did = ${v.did} AND kp.ref = h.ref AND kp.last_resort
      WHERE h.owner_did = ${v.did} AND h.ref = ANY(${v.refs}::bytea[]) AND h.claimed_by = ${v.caller}
    )
    SELECT encode(ref, 'hex') AS ref, false AS last_resort, device_id FROM reserved
    UNION ALL SELECT encode(ref, 'hex'), true, device_id FROM reused`,
)

/**
 * Reserves the key packages a Welcome names for the conversation it admits
 * to, on their owners' shards, before the conversation's transaction: one
 * statement per DID the request adds (side by side), each on one owner's
 * shard, so the membership change itself writes on the
 * conversation's shard alone. A regular package is reserved when
 * getKeyPackages handed it out to `caller` and no other conversation's
 * Welcome reserved it: a key package opens one group. A last-resort one
 * handed out to `caller` (still its owner's: a replaced one is not) is only
 * found, not reserved. Whether each DID is named, and whether the
 * conversation already admitted by a package, is the membership change's
 * to say (checkAdmission, admissionSteps).
 *
 * A reservation outlives a change that failed (an epoch conflict, a refusal):
 * the caller's retry for the same conversation uses the same packages. It
 * runs again for a replayed request, finding the same packages; a refusal is
 * not thrown but kept, so a request answered before is replayed as it was.
 * `keyPackageHashes` (the client-era clients say which key packages their
 * Welcome uses, as hex KeyPackageRefs) must be what the Welcome names.
 */
export async function reserveWelcome(
  db: Db,
  args: {
    convoId: string
    caller: string
    dids: string[]
    welcome: Welcome | undefined
    keyPackageHashes?: Array<{ did: string; hash: string }> | undefined
  },
): Promise<ReservedWelcome | undefined> {
  const { welcome } = args
  if (!welcome) return undefined
  const refs = [...new Map(welcome.keyPackageRefs.map((ref) => [refHex(ref), ref])).values()]
  const owners = await Promise.all(
    [...new Set(args.dids)].map(async (did) => {
      const { rows } = await execute(db, keyPackageReservation, {
        did,
        refs,
        convoId: args.convoId,
        caller: args.caller,
      })
      return rows.map((row) => ({ did, ref: row.ref, lastResort: row.last_resort, deviceId: row.device_id }))
    }),
  )
  const keyPackages = owners.flat()
  const found = new Set(keyPackages.map((kp) => kp.ref))
  const missing = refs.find((ref) => !found.has(refHex(ref)))
  const unnamed = args.keyPackageHashes?.find(
    (named) => !keyPackages.some((kp) => kp.did === named.did && kp.ref === named.hash.toLowerCase()),
  )
  const refusal = missing
    ? await whyNotReserved(db, args, missing)
    : unnamed && `does not name key package ${unnamed.hash} of ${unnamed.did}, which keyPackageHashes says it uses`
  return { ...welcome, keyPackages, ...(refusal ? { refusal } : {}) }
}

/** Why a key package a Welcome names could not be reserved (only runs for refused Welcomes). */
async function whyNotReserved(
  db: Db,
  args: { convoId: string; caller: string; dids: string[] },
  ref: Uint8Array,
): Promise<string> {
  const named = `names key package ${refHex(ref)}`
  const notAdded = `${named}, which is not a key package of a member being added or of a current member`
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
 * Admitting `added` (and new devices of `members`) to a conversation by
 * `welcome`, the Welcome that follows the commit built on `epoch`: it must be
 * of the conversation's cipher suite, and each key package it names must be
 * one of an added DID's or a current member's, reserved for this
 * conversation (reserveWelcome) and not used by another of its Welcomes, or
 * a last-resort one handed out to `caller`; every added DID must be named.
 * The Welcome is then stored for each device it names. So a Welcome nobody
 * could open is never stored, and no one is added without one.
 */
export interface Admission {
  convoId: string
  cipherSuite: string
  caller: string
  added: string[]
  /** The current members, whose new devices a Welcome may admit. */
  members: string[]
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
  if (welcome.refusal) throw welcomeMismatch(welcome.refusal)
  if (welcome.keyPackages.length === 0) throw welcomeMismatch('comes with no member to add')
  // Reserved for a DID the request named, but one that is neither added nor a member.
  const stranger = welcome.keyPackages.find((kp) => !added.includes(kp.did) && !args.members.includes(kp.did))
  if (stranger) {
    throw welcomeMismatch(
      `names key package ${stranger.ref}, which is not a key package of a member being added or of a current member`,
    )
  }
  const named = new Set(welcome.keyPackages.map((kp) => kp.did))
  const unnamed = added.find((did) => !named.has(did))
  if (unnamed) throw welcomeMismatch(`names no key package of ${unnamed}, which is being added`)
  return { ...args, welcome, regular: welcome.keyPackages.filter((kp) => !kp.lastResort) }
}

/** An admission's values, as the parameters of the membership change's statement. */
export interface AdmissionValues {
  convoId: string
  admittedRefs: Buffer[]
  admittedOwners: string[]
  admissionEpoch: number
  welcomeData: Uint8Array
  /** One delivery per (recipient, device): the device empty for a package bound to none. */
  recipients: string[]
  recipientDevices: string[]
  retentionDays: number
}

export function admissionValues(args: CheckedAdmission): AdmissionValues {
  const deliveries = new Map(
    args.welcome.keyPackages.map((kp): [string, [string, string]] => {
      const device = kp.deviceId ?? ''
      return [`${kp.did} ${device}`, [kp.did, device]]
    }),
  )
  return {
    convoId: args.convoId,
    admittedRefs: args.regular.map((kp) => Buffer.from(kp.ref, 'hex')),
    admittedOwners: args.regular.map((kp) => kp.did),
    admissionEpoch: args.epoch,
    welcomeData: args.welcome.data,
    recipients: [...deliveries.values()].map(([did]) => did),
    recipientDevices: [...deliveries.values()].map(([, device]) => device),
    retentionDays: args.retentionDays,
  }
}

/**
 * The steps of an admission, part of a membership change's write:
 * `admitted` records the regular key packages the Welcome uses, once per
 * conversation (a package reserved for it admits one Welcome; a last-resort
 * one, any number); the Welcome is stored once and delivered to each device
 * it names (a member added again, after leaving, gets the new Welcome from
 * scratch); the devices the server knows are recorded as in the
 * conversation (by the fact that a Welcome names their key packages), and
 * their pending additions settled. Whether every package was admitted is
 * `checkAdmitted`'s to say, from `admittedRefs`.
 */
export function admissionSteps(v: AdmissionValues): Step[] {
  const recipients = sql`unnest(${v.recipients}::text[], ${v.recipientDevices}::text[]) AS r(did, device)`
  return [
    {
      name: 'admitted',
      insert: 'admitted_key_package',
      each: { alias: 'kp', rows: sql`unnest(${v.admittedRefs}::bytea[], ${v.admittedOwners}::text[]) AS kp(ref, did)` },
      values: { convo_id: v.convoId, ref: sql`kp.ref`, owner_did: sql`kp.did`, epoch: v.admissionEpoch },
      tail: sql`ON CONFLICT (convo_id, ref) DO NOTHING`,
      returning: sql`encode(ref, 'hex') AS ref`,
      keep: { ref: 'text' },
    },
    {
      name: 'welcomed',
      insert: 'welcome',
      values: { convo_id: v.convoId, data: v.welcomeData },
      returning: sql`id`,
    },
    {
      name: 'delivered',
      insert: 'welcome_delivery',
      uses: ['welcomed'],
      each: { alias: 'r', rows: recipients },
      values: {
        convo_id: v.convoId,
        recipient_did: sql`r.did`,
        device_id: sql`r.device`,
        welcome_id: sql`welcomed.id`,
        expires_at: sql`now() + make_interval(days => ${v.retentionDays})`,
      },
      tail: sql`ON CONFLICT (convo_id, recipient_did, device_id) DO UPDATE SET
        welcome_id = EXCLUDED.welcome_id, state = 'available', created_at = EXCLUDED.created_at,
        expires_at = EXCLUDED.expires_at, fetched_at = NULL, fetch_count = 0, consumed_at = NULL,
        consumed_via = NULL, failure_count = 0, last_error = NULL`,
    },
    {
      name: 'devices_in',
      insert: 'member_device',
      each: { alias: 'r', rows: recipients },
      when: sql`r.device <> ''`,
      values: { convo_id: v.convoId, user_did: sql`r.did`, device_id: sql`r.device`, joined_by: sql`'welcome'` },
      tail: sql`ON CONFLICT (convo_id, user_did, device_id) DO NOTHING`,
    },
    {
      name: 'additions_settled',
      update: 'pending_device_addition',
      each: { alias: 'r', rows: recipients },
      set: sql`status = 'completed', settled_at = now(), settled_by = 'welcome'`,
      where: sql`convo_id = ${v.convoId} AND status IN ('pending', 'in_progress')
        AND user_did = r.did AND device_id = r.device`,
    },
  ]
}

/** The refs (hex) of the regular key packages `admissionSteps` admitted, as the write's result reads them. */
export const admittedRefs = (refs: StepRefs): RawBuilder<unknown> =>
  sql`ARRAY(SELECT ref FROM ${refs.rows('admitted')})`

/**
 * After the statement: every regular key package the Welcome names was
 * admitted (none had admitted to this conversation before). Throws
 * otherwise; the statement's transaction then rolls back.
 */
export function checkAdmitted(args: CheckedAdmission, admitted: string[]): void {
  const used = args.regular.find((kp) => !admitted.includes(kp.ref))
  if (used) throw welcomeMismatch(`names key package ${used.ref}, which another Welcome already used`)
}
