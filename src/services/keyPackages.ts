import { createHash } from 'node:crypto'
import { sql } from 'kysely'
import type { Db } from '../db/index.js'
import { violatedUniqueKey } from '../db/errors.js'
import { executePrepared } from '../db/prepared.js'
import { executeRecorded, unrecorded, writeStatement, type RecordedWrite } from '../idempotency/store.js'
import type * as GetKeyPackageStats from '../lexicon/types/blue.catbird.mls.getKeyPackageStats.js'
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
const isDuplicatePackage = (err: unknown): boolean => violatedUniqueKey(err)?.startsWith('key_package_') ?? false

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
    select: sql<{
      available: number
      inserted: boolean
    }>`SELECT available, EXISTS (SELECT 1 FROM inserted) AS inserted FROM counted`,
  })
  const name = `publish_${args.lastResort ? 'last_resort' : 'key_package'}${record ? '_keyed' : ''}`
  const delegation = { shardKey: args.owner, columns: 'available int, inserted boolean' }
  const rows = await executeRecorded(db, name, statement, record, delegation).catch((err: unknown) => {
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
 * Hands out one key package per DID, one statement per DID (each on its
 * owner's shard; they run side by side): the oldest available regular one,
 * marked consumed (SKIP LOCKED makes concurrent callers take different
 * packages instead of waiting for, or sharing, the same one); with none
 * left, the DID's last-resort package, if it has one (the newest, when no
 * suite is asked for), which is not consumed: its hand-outs are counted for
 * its owner, and recorded for the caller, whose Welcome may then name it.
 */
export async function claimKeyPackages(
  db: Db,
  args: { dids: string[]; cipherSuite?: string; claimedBy: string },
): Promise<{ keyPackages: ClaimedKeyPackage[]; missing: string[] }> {
  const dids = [...new Set(args.dids)]
  const suite = args.cipherSuite ?? null
  const claims = await Promise.all(
    dids.map(async (did) => {
      const { rows } = await executePrepared(
        db,
        'claim_key_package',
        sql<{ cipher_suite: string; data: Uint8Array; last_resort: boolean }>`
      WITH regular AS (
        SELECT id FROM key_package
        WHERE owner_did = ${did} AND consumed_at IS NULL AND NOT last_resort AND expires_at > now()
          AND (${suite}::text IS NULL OR cipher_suite = ${suite}::text)
        ORDER BY created_at, id
        LIMIT 1
        FOR UPDATE SKIP LOCKED
      ), claimed AS (
        UPDATE key_package SET consumed_at = now(), consumed_by = ${args.claimedBy}
        FROM regular WHERE key_package.owner_did = ${did} AND key_package.id = regular.id
        RETURNING key_package.cipher_suite, key_package.data
      ), fallback AS (
        SELECT id, cipher_suite, data, ref FROM key_package
        WHERE owner_did = ${did} AND last_resort AND expires_at > now()
          AND (${suite}::text IS NULL OR cipher_suite = ${suite}::text)
          AND NOT EXISTS (SELECT 1 FROM claimed)
        ORDER BY created_at DESC
        LIMIT 1
      ), counted AS (
        UPDATE key_package SET handed_out = handed_out + 1
        FROM fallback WHERE key_package.owner_did = ${did} AND key_package.id = fallback.id
      ), recorded AS (
        INSERT INTO last_resort_handout (owner_did, ref, claimed_by)
        SELECT ${did}, ref, ${args.claimedBy} FROM fallback
        ON CONFLICT (owner_did, ref, claimed_by) DO UPDATE SET claimed_at = EXCLUDED.claimed_at
      )
      SELECT cipher_suite, data, false AS last_resort FROM claimed
      UNION ALL SELECT cipher_suite, data, true FROM fallback
    `,
        { shardKey: did, columns: 'cipher_suite text, data bytea, last_resort boolean' },
      )
      return rows.map((r) => ({ did, keyPackage: r.data, cipherSuite: r.cipher_suite, lastResort: r.last_resort }))
    }),
  )
  const keyPackages = claims.flat()
  const found = new Set(keyPackages.map((kp) => kp.did))
  return {
    // Regular packages first, as clients have always got them.
    keyPackages: [...keyPackages.filter((kp) => !kp.lastResort), ...keyPackages.filter((kp) => kp.lastResort)],
    missing: dids.filter((did) => !found.has(did)),
  }
}

/** An owner's key packages counted, as getKeyPackageStats answers them (`threshold`: the server's setting). */
export async function keyPackageStats(
  db: Db,
  args: { owner: string; cipherSuite?: string; threshold: number },
): Promise<GetKeyPackageStats.Output> {
  const row = await db
    .selectFrom('key_package')
    .select([
      sql<number>`count(*) FILTER (WHERE consumed_at IS NULL AND NOT last_resort AND expires_at > now())`.as(
        'available',
      ),
      sql<number>`count(*)`.as('total'),
      sql<number>`count(*) FILTER (WHERE consumed_at IS NOT NULL)`.as('consumed'),
      sql<number>`count(*) FILTER (WHERE consumed_at > now() - interval '1 day')`.as('consumed_last_24h'),
      sql<number>`count(*) FILTER (WHERE consumed_at > now() - interval '7 days')`.as('consumed_last_7d'),
      sql<number>`count(*) FILTER (WHERE last_resort AND expires_at > now())`.as('last_resort'),
      sql<number | null>`sum(handed_out) FILTER (WHERE last_resort AND expires_at > now())`.as('handouts'),
    ])
    .where('owner_did', '=', args.owner)
    .$if(args.cipherSuite !== undefined, (qb) => qb.where('cipher_suite', '=', args.cipherSuite as string))
    .executeTakeFirstOrThrow()
  const available = Number(row.available)
  const consumedLast7d = Number(row.consumed_last_7d)
  return {
    available,
    threshold: args.threshold,
    needsReplenish: available < args.threshold,
    total: Number(row.total),
    consumed: Number(row.consumed),
    consumedLast24h: Number(row.consumed_last_24h),
    consumedLast7d,
    averageDailyConsumption: Math.floor(consumedLast7d / 7),
    lastResort: Number(row.last_resort) > 0,
    lastResortHandouts: Number(row.handouts ?? 0),
  }
}
