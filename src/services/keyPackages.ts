import { createHash } from 'node:crypto'
import { sql } from 'kysely'
import type { Db } from '../db/index.js'
import { executePrepared } from '../db/prepared.js'
import { recordCte, type RecordedWrite } from '../idempotency/store.js'
import { conflict, invalidRequest } from '../xrpc/errors.js'

export interface PublishKeyPackageArgs {
  owner: string
  cipherSuite: string
  data: Uint8Array
  /** Its KeyPackageRef (RFC 9420 §5.2): how Welcomes name it. */
  ref: Uint8Array
  expiresAt: Date
  maxPerUser: number
}

/**
 * Stores a key package and returns how many the owner now has available, in
 * one statement: the count, the insert (not past the owner's limit; the
 * same bytes, or the same package framed another way, are stored once),
 * and a keyed write's record (see src/idempotency/store.ts).
 */
export async function publishKeyPackage(db: Db, args: PublishKeyPackageArgs, record?: RecordedWrite): Promise<number> {
  const { rows } = await executePrepared(
    db,
    `publish_key_package${record ? '_keyed' : ''}`,
    sql<{ available: number; inserted: boolean }>`
      WITH counted AS (
        SELECT count(*)::int AS available FROM key_package
        WHERE owner_did = ${args.owner} AND consumed_at IS NULL AND expires_at > now()
      ), inserted AS (
        INSERT INTO key_package (owner_did, cipher_suite, data, data_sha256, ref, expires_at)
        SELECT ${args.owner}, ${args.cipherSuite}, ${args.data}, ${createHash('sha256').update(args.data).digest()},
               ${args.ref}, ${args.expiresAt}
        FROM counted WHERE available < ${args.maxPerUser}
        ON CONFLICT DO NOTHING
        RETURNING id
      ), published AS (
        SELECT available + 1 AS available FROM counted, inserted
      )${record ? sql`, recorded AS (${recordCte(record, 'published')})` : sql``}
      SELECT available, EXISTS (SELECT 1 FROM inserted) AS inserted FROM counted`,
  )
  const { available, inserted } = rows[0] as { available: number; inserted: boolean }
  if (inserted) return available + 1
  if (available >= args.maxPerUser) {
    throw invalidRequest('TooManyKeyPackages', `You already have ${args.maxPerUser} unused key packages on this server`)
  }
  throw conflict('DuplicateKeyPackage', 'This key package was already published')
}

export interface ClaimedKeyPackage {
  did: string
  keyPackage: Uint8Array
  cipherSuite: string
}

/**
 * Hands out one available key package per DID and marks it consumed, in
 * one statement. SKIP LOCKED makes concurrent callers take different
 * packages instead of waiting for (or sharing) the same one.
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
        WHERE owner_did = wanted.did AND consumed_at IS NULL AND expires_at > now()
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
  return {
    keyPackages: rows.map((r) => ({ did: r.owner_did, keyPackage: r.data, cipherSuite: r.cipher_suite })),
    missing: dids.filter((did) => !found.has(did)),
  }
}

export async function keyPackageStats(
  db: Db,
  args: { owner: string; cipherSuite?: string },
): Promise<{ available: number; consumed: number }> {
  const row = await db
    .selectFrom('key_package')
    .select([
      sql<number>`count(*) FILTER (WHERE consumed_at IS NULL AND expires_at > now())`.as('available'),
      sql<number>`count(*) FILTER (WHERE consumed_at IS NOT NULL)`.as('consumed'),
    ])
    .where('owner_did', '=', args.owner)
    .$if(args.cipherSuite !== undefined, (qb) => qb.where('cipher_suite', '=', args.cipherSuite as string))
    .executeTakeFirstOrThrow()
  return { available: Number(row.available), consumed: Number(row.consumed) }
}
