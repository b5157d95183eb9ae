import { createHash } from 'node:crypto'
import { sql } from 'kysely'
import type { Db } from '../db/index.js'
import { executePrepared } from '../db/prepared.js'
import { executeRecorded, unrecorded, writeStatement, type RecordedWrite } from '../idempotency/store.js'
import { conflict, invalidRequest } from './errors.js'

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

const sha256 = (data: Uint8Array) => createHash('sha256').update(data).digest()
const duplicate = () => conflict('DuplicateKeyPackage', 'This key package was already published')

/** A key package's unique index refused the bytes: the duplicate check raced the same package published at once. */
const isDuplicatePackage = (err: unknown): boolean => {
  const { code, constraint } = err as { code?: unknown; constraint?: unknown }
  return code === '23505' && typeof constraint === 'string' && constraint.startsWith('key_package_')
}

/**
 * Stores a regular key package (not past the owner's limit; the same bytes,
 * or the same package framed another way, are stored once); the
 * last-resort one of its suite counts its hand-outs afresh.
 */
const regularInsert = (args: PublishKeyPackageArgs, record: RecordedWrite | undefined) => sql`
  inserted AS (
    INSERT INTO key_package (owner_did, cipher_suite, data, data_sha256, ref, expires_at)
    SELECT ${args.owner}, ${args.cipherSuite}, ${args.data}, ${sha256(args.data)}, ${args.ref}, ${args.expiresAt}
    FROM counted WHERE available < ${args.maxPerUser}${unrecorded(record)}
    ON CONFLICT DO NOTHING
    RETURNING id
  ), restarted AS (
    UPDATE key_package SET handed_out = 0
    WHERE owner_did = ${args.owner} AND cipher_suite = ${args.cipherSuite} AND last_resort AND handed_out > 0
      AND EXISTS (SELECT 1 FROM inserted)
  )`

/**
 * Stores the owner's last-resort package of its suite, replacing the
 * previous one in place (one per owner and suite, by a unique index: of two
 * published at once, the later wins). Who was handed the replaced one is
 * forgotten: no Welcome may name it now.
 */
const lastResortInsert = (args: PublishKeyPackageArgs, record: RecordedWrite | undefined) => sql`
  duplicate AS (
    SELECT 1 FROM key_package WHERE owner_did = ${args.owner} AND (data_sha256 = ${sha256(args.data)} OR ref = ${args.ref})
  ), replaced AS (
    SELECT ref FROM key_package WHERE owner_did = ${args.owner} AND cipher_suite = ${args.cipherSuite} AND last_resort
  ), forgotten AS (
    DELETE FROM last_resort_handout
    WHERE owner_did = ${args.owner} AND ref IN (SELECT ref FROM replaced) AND NOT EXISTS (SELECT 1 FROM duplicate)${unrecorded(record)}
  ), inserted AS (
    INSERT INTO key_package (owner_did, cipher_suite, data, data_sha256, ref, expires_at, last_resort)
    SELECT ${args.owner}, ${args.cipherSuite}, ${args.data}, ${sha256(args.data)}, ${args.ref}, ${args.expiresAt}, true
    WHERE NOT EXISTS (SELECT 1 FROM duplicate)${unrecorded(record)}
    ON CONFLICT (owner_did, cipher_suite) WHERE last_resort DO UPDATE
      SET data = EXCLUDED.data, data_sha256 = EXCLUDED.data_sha256, ref = EXCLUDED.ref,
          created_at = EXCLUDED.created_at, expires_at = EXCLUDED.expires_at, handed_out = 0
    RETURNING id
  )`

/**
 * Stores a key package and returns how many regular ones the owner now has
 * available (a last-resort one is neither counted nor limited), in one
 * statement: the count, the insert, and a keyed write's check and record
 * (see src/idempotency/store.ts).
 */
export async function publishKeyPackage(db: Db, args: PublishKeyPackageArgs, record?: RecordedWrite): Promise<number> {
  const added = args.lastResort ? 0 : 1
  const statement = writeStatement(record, {
    ctes: sql`
      counted AS (
        SELECT count(*)::int AS available FROM key_package
        WHERE owner_did = ${args.owner} AND consumed_at IS NULL AND NOT last_resort AND expires_at > now()
      ), ${args.lastResort ? lastResortInsert(args, record) : regularInsert(args, record)}, published AS (
        SELECT available + ${sql.lit(added)} AS available FROM counted, inserted
      )`,
    written: 'published',
    select: sql<{ available: number; inserted: boolean }>`SELECT available, EXISTS (SELECT 1 FROM inserted) AS inserted FROM counted`,
  })
  const name = `publish_${args.lastResort ? 'last_resort' : 'key_package'}${record ? '_keyed' : ''}`
  const rows = await executeRecorded(db, name, statement, record).catch((err: unknown) => {
    throw isDuplicatePackage(err) ? duplicate() : err
  })
  const { available, inserted } = rows[0] as { available: number; inserted: boolean }
  if (inserted) return available + added
  if (!args.lastResort && available >= args.maxPerUser) {
    throw invalidRequest('TooManyKeyPackages', `You already have ${args.maxPerUser} unused key packages on this server`)
  }
  throw duplicate()
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
  const { rows } = await executePrepared(db, 'claim_key_packages', sql<{ owner_did: string; cipher_suite: string; data: Uint8Array }>`
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
  `)
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
