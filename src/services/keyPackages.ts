import { createHash } from 'node:crypto'
import { sql } from 'kysely'
import type { Db } from '../db/index.js'
import { conflict, invalidRequest } from '../xrpc/errors.js'

export interface PublishKeyPackageArgs {
  owner: string
  cipherSuite: string
  data: Uint8Array
  /** Its KeyPackageRef (RFC 9420 §5.2): how Welcomes name it. */
  ref: Uint8Array
  expiresAt: Date
  maxPerUser: number
  /** The owner's last-resort package of its cipher suite: replaces the previous one. */
  lastResort: boolean
}

/** An owner's regular packages that can still be handed out (the last-resort one stands in only when none is left). */
const available = (db: Db, owner: string) =>
  db
    .selectFrom('key_package')
    .where('owner_did', '=', owner)
    .where('consumed_at', 'is', null)
    .where('last_resort', '=', false)
    .where('expires_at', '>', sql<Date>`now()`)

const duplicate = () => conflict('DuplicateKeyPackage', 'This key package was already published')
const UNIQUE_VIOLATION = '23505'
const sha256 = (data: Uint8Array) => createHash('sha256').update(data).digest()

/** Stores a key package; returns how many regular ones the owner now has available. */
export async function publishKeyPackage(db: Db, args: PublishKeyPackageArgs): Promise<number> {
  const { count } = await available(db, args.owner)
    .select((eb) => eb.fn.countAll<number>().as('count'))
    .executeTakeFirstOrThrow()
  if (args.lastResort) {
    await publishLastResort(db, args)
    return Number(count)
  }
  if (Number(count) >= args.maxPerUser) {
    throw invalidRequest(
      'TooManyKeyPackages',
      `You already have ${args.maxPerUser} unused key packages on this server`,
    )
  }
  const { rows } = await sql`
    WITH inserted AS (
      INSERT INTO key_package (owner_did, cipher_suite, data, data_sha256, ref, expires_at)
      VALUES (${args.owner}, ${args.cipherSuite}, ${args.data}, ${sha256(args.data)}, ${args.ref}, ${args.expiresAt})
      -- The same bytes, or the same package framed another way (the same ref).
      ON CONFLICT DO NOTHING
      RETURNING id
    ), restarted AS (
      -- A regular package again: the last-resort one's hand-outs are counted afresh.
      UPDATE key_package SET handed_out = 0
      WHERE owner_did = ${args.owner} AND cipher_suite = ${args.cipherSuite} AND last_resort AND handed_out > 0
        AND EXISTS (SELECT 1 FROM inserted)
    )
    SELECT id FROM inserted
  `.execute(db)
  if (rows.length === 0) throw duplicate()
  return Number(count) + 1
}

/**
 * Stores the owner's last-resort package of its cipher suite, replacing the
 * previous one in place (one per owner and suite, by a unique index), in one
 * statement. The record of who was handed the replaced one goes with it: no
 * Welcome may name that package now.
 */
async function publishLastResort(db: Db, args: PublishKeyPackageArgs): Promise<void> {
  const { owner, cipherSuite } = args
  const sha = sha256(args.data)
  try {
    const { rows } = await sql`
      WITH duplicate AS (
        SELECT 1 FROM key_package WHERE owner_did = ${owner} AND (data_sha256 = ${sha} OR ref = ${args.ref})
      ), replaced AS (
        SELECT ref FROM key_package WHERE owner_did = ${owner} AND cipher_suite = ${cipherSuite} AND last_resort
      ), forgotten AS (
        DELETE FROM last_resort_handout
        WHERE owner_did = ${owner} AND ref IN (SELECT ref FROM replaced) AND NOT EXISTS (SELECT 1 FROM duplicate)
      )
      INSERT INTO key_package (owner_did, cipher_suite, data, data_sha256, ref, expires_at, last_resort)
      SELECT ${owner}, ${cipherSuite}, ${args.data}, ${sha}, ${args.ref}, ${args.expiresAt}, true
      WHERE NOT EXISTS (SELECT 1 FROM duplicate)
      ON CONFLICT (owner_did, cipher_suite) WHERE last_resort DO UPDATE
        SET data = EXCLUDED.data, data_sha256 = EXCLUDED.data_sha256, ref = EXCLUDED.ref,
            created_at = EXCLUDED.created_at, expires_at = EXCLUDED.expires_at, handed_out = 0
      RETURNING id
    `.execute(db)
    if (rows.length === 0) throw duplicate()
  } catch (err) {
    // The same bytes published at the same moment as a regular package: the duplicate check raced it.
    throw (err as { code?: string }).code === UNIQUE_VIOLATION ? duplicate() : err
  }
}

export interface ClaimedKeyPackage {
  did: string
  keyPackage: Uint8Array
  cipherSuite: string
  /** The owner had no regular package left: this one is not consumed, others may get it too. */
  lastResort: boolean
}

/**
 * Hands out one key package per DID: the oldest available regular one,
 * marked consumed, in one statement (SKIP LOCKED makes concurrent callers
 * take different packages instead of waiting for, or sharing, the same
 * one). A DID with none left gets its last-resort package, if it has one.
 */
export async function claimKeyPackages(
  db: Db,
  args: { dids: string[]; cipherSuite?: string; claimedBy: string },
): Promise<{ keyPackages: ClaimedKeyPackage[]; missing: string[] }> {
  const dids = [...new Set(args.dids)]
  const suite = args.cipherSuite ?? null
  const { rows } = await sql<{ owner_did: string; cipher_suite: string; data: Uint8Array }>`
    WITH picked AS (
      SELECT kp.id
      FROM unnest(${dids}::text[]) AS wanted(did)
      CROSS JOIN LATERAL (
        SELECT id FROM key_package
        WHERE owner_did = wanted.did AND consumed_at IS NULL AND NOT last_resort AND expires_at > now()
          AND (${suite}::text IS NULL OR cipher_suite = ${suite}::text)
        ORDER BY created_at, id
        LIMIT 1
        FOR UPDATE SKIP LOCKED
      ) kp
    )
    UPDATE key_package SET consumed_at = now(), consumed_by = ${args.claimedBy}
    FROM picked WHERE key_package.id = picked.id
    RETURNING key_package.owner_did, key_package.cipher_suite, key_package.data
  `.execute(db)
  const found = new Set(rows.map((r) => r.owner_did))
  const left = dids.filter((did) => !found.has(did))
  const lastResort = left.length === 0 ? [] : await claimLastResort(db, { dids: left, suite, claimedBy: args.claimedBy })
  for (const r of lastResort) found.add(r.owner_did)
  const claimed = (list: typeof rows, isLastResort: boolean) =>
    list.map((r) => ({ did: r.owner_did, keyPackage: r.data, cipherSuite: r.cipher_suite, lastResort: isLastResort }))
  return {
    keyPackages: [...claimed(rows, false), ...claimed(lastResort, true)],
    missing: dids.filter((did) => !found.has(did)),
  }
}

/**
 * Hands out the last-resort package of each DID (the newest, when no suite
 * is asked for), without consuming it: its hand-outs are counted for its
 * owner, and recorded for the caller, whose Welcome may then name it.
 */
async function claimLastResort(db: Db, args: { dids: string[]; suite: string | null; claimedBy: string }) {
  const { rows } = await sql<{ owner_did: string; cipher_suite: string; data: Uint8Array }>`
    WITH picked AS (
      SELECT DISTINCT ON (owner_did) id, owner_did, cipher_suite, data, ref
      FROM key_package
      WHERE owner_did = ANY(${args.dids}::text[]) AND last_resort AND expires_at > now()
        AND (${args.suite}::text IS NULL OR cipher_suite = ${args.suite}::text)
      ORDER BY owner_did, created_at DESC
    ), counted AS (
      UPDATE key_package SET handed_out = handed_out + 1
      FROM picked WHERE key_package.owner_did = picked.owner_did AND key_package.id = picked.id
    ), recorded AS (
      INSERT INTO last_resort_handout (owner_did, ref, claimed_by)
      SELECT owner_did, ref, ${args.claimedBy} FROM picked
      ON CONFLICT (owner_did, ref, claimed_by) DO UPDATE SET claimed_at = EXCLUDED.claimed_at
    )
    SELECT owner_did, cipher_suite, data FROM picked
  `.execute(db)
  return rows
}

/**
 * Of `refs`, the last-resort packages of `owners` that were handed out to
 * `claimedBy` and are still their owners' (a replaced one is not): a
 * Welcome of `claimedBy` may name them, as often as it likes.
 */
export async function lastResortHandedOut(
  db: Db,
  args: { owners: string[]; refs: Uint8Array[]; claimedBy: string },
): Promise<Array<{ owner_did: string; ref: Uint8Array }>> {
  return db
    .selectFrom('last_resort_handout as h')
    .innerJoin('key_package as kp', (join) => join.onRef('kp.owner_did', '=', 'h.owner_did').onRef('kp.ref', '=', 'h.ref'))
    .select(['h.owner_did', 'h.ref'])
    .where('h.owner_did', 'in', args.owners)
    .where('h.ref', 'in', args.refs)
    .where('h.claimed_by', '=', args.claimedBy)
    .where('kp.last_resort', '=', true)
    .execute()
}

export interface KeyPackageStats {
  available: number
  consumed: number
  /** An unexpired last-resort package stands in when none is available. */
  lastResort: boolean
  /** Its hand-outs since the owner last published a regular package of its suite. */
  lastResortHandouts: number
}

export async function keyPackageStats(db: Db, args: { owner: string; cipherSuite?: string }): Promise<KeyPackageStats> {
  const row = await db
    .selectFrom('key_package')
    .select([
      sql<number>`count(*) FILTER (WHERE consumed_at IS NULL AND NOT last_resort AND expires_at > now())`.as('available'),
      sql<number>`count(*) FILTER (WHERE consumed_at IS NOT NULL)`.as('consumed'),
      sql<number>`count(*) FILTER (WHERE last_resort AND expires_at > now())`.as('last_resort'),
      sql<number | null>`sum(handed_out) FILTER (WHERE last_resort AND expires_at > now())`.as('handouts'),
    ])
    .where('owner_did', '=', args.owner)
    .$if(args.cipherSuite !== undefined, (qb) => qb.where('cipher_suite', '=', args.cipherSuite as string))
    .executeTakeFirstOrThrow()
  return {
    available: Number(row.available),
    consumed: Number(row.consumed),
    lastResort: Number(row.last_resort) > 0,
    lastResortHandouts: Number(row.handouts ?? 0),
  }
}
