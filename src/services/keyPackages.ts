import { createHash } from 'node:crypto'
import { sql, type RawBuilder } from 'kysely'
import { executeOnShard, onShard } from '../db/delegated.js'
import { violatedUniqueKey } from '../db/errors.js'
import type { Db } from '../db/schema.js'
import { byShape, execute, statement } from '../db/statement.js'
import {
  executeRecorded,
  findRecord,
  FOUND_COLUMNS,
  itemRecordedCte,
  itemRecordsCte,
  unrecorded,
  writeStatement,
  type ItemKeyValues,
  type KeyValues,
  type RecordedWrite,
  type ResponseSql,
} from '../idempotency/statement.js'
import type * as GetKeyPackageHistory from '../lexicon/types/blue.catbird.mls.getKeyPackageHistory.js'
import type * as GetKeyPackageStats from '../lexicon/types/blue.catbird.mls.getKeyPackageStats.js'
import type * as GetKeyPackageStatus from '../lexicon/types/blue.catbird.mls.getKeyPackageStatus.js'
import { conflict, invalidRequest } from './errors.js'
import { iso } from './timestamps.js'

/**
 * A regular key package its owner still offers: not handed out, not expired.
 * (The partial index key_package_available_idx holds the first two terms.)
 */
const AVAILABLE = sql`consumed_at IS NULL AND NOT last_resort AND expires_at > now()`

export interface PublishKeyPackageArgs {
  owner: string
  cipherSuite: string
  data: Uint8Array
  /** Its KeyPackageRef (RFC 9420 §5.2): how Welcomes name it. */
  ref: Uint8Array
  /** Its leaf's signature key: the package belongs to the owner's device registered with this MLS key, if any. */
  signatureKey: Uint8Array
  expiresAt: Date
  maxPerUser: number
  /** The owner's last-resort package of its cipher suite: replaces the previous one. */
  lastResort: boolean
}

interface PublishValues {
  owner: string
  cipherSuite: string
  data: Uint8Array
  dataSha256: Buffer
  ref: Uint8Array
  leaf: Uint8Array
  expiresAt: Date
  maxPerUser: number
}

/** The owner's registered device whose MLS signature key is `leaf` (NULL: none): the device a package it signed is bound to. */
const deviceOfLeaf = (owner: unknown, leaf: unknown) =>
  sql`(SELECT device_id FROM device WHERE user_did = ${owner} AND mls_signature_key = ${leaf})`

const sha256 = (data: Uint8Array) => createHash('sha256').update(data).digest()
export const duplicate = () => conflict('DuplicateKeyPackage', 'This key package was already published')
export const tooManyKeyPackages = (max: number) =>
  invalidRequest('TooManyKeyPackages', `You already have ${max} unused key packages on this server`)

/** A key package's unique index refused the bytes: the duplicate check raced the same package published at once. */
const isDuplicatePackage = (err: unknown): boolean => violatedUniqueKey(err)?.startsWith('key_package_') ?? false

/**
 * Stores a regular key package (not past the owner's limit; the same bytes,
 * or the same package framed another way, are stored once); the
 * last-resort one of its suite counts its hand-outs afresh.
 */
const regularInsert = (v: PublishValues, keyed: boolean) => sql`
  inserted AS (
    INSERT INTO key_package (owner_did, cipher_suite, data, data_sha256, ref, expires_at, leaf_signature_key, device_id)
    SELECT ${v.owner}, ${v.cipherSuite}, ${v.data}, ${v.dataSha256}, ${v.ref}, ${v.expiresAt}, ${v.leaf},
           ${deviceOfLeaf(v.owner, v.leaf)}
    FROM counted WHERE available < ${v.maxPerUser}${unrecorded(keyed)}
    ON CONFLICT DO NOTHING
    RETURNING id
  ), restarted AS (
    UPDATE key_package SET handed_out = 0
    WHERE owner_did = ${v.owner} AND cipher_suite = ${v.cipherSuite} AND last_resort AND handed_out > 0
      AND EXISTS (SELECT 1 FROM inserted)
  )`

/**
 * Stores the owner's last-resort package of its suite, replacing the
 * previous one in place (one per owner and suite, by a unique index: of two
 * published at once, the later wins). Who was handed the replaced one is
 * forgotten: no Welcome may name it now.
 */
const lastResortInsert = (v: PublishValues, keyed: boolean) => sql`
  duplicate AS (
    SELECT 1 FROM key_package WHERE owner_did = ${v.owner} AND (data_sha256 = ${v.dataSha256} OR ref = ${v.ref})
  ), replaced AS (
    SELECT ref FROM key_package WHERE owner_did = ${v.owner} AND cipher_suite = ${v.cipherSuite} AND last_resort
  ), forgotten AS (
    DELETE FROM last_resort_handout
    WHERE owner_did = ${v.owner} AND ref IN (SELECT ref FROM replaced) AND NOT EXISTS (SELECT 1 FROM duplicate)${unrecorded(keyed)}
  ), inserted AS (
    INSERT INTO key_package (owner_did, cipher_suite, data, data_sha256, ref, expires_at, last_resort,
                             leaf_signature_key, device_id)
    SELECT ${v.owner}, ${v.cipherSuite}, ${v.data}, ${v.dataSha256}, ${v.ref}, ${v.expiresAt}, true, ${v.leaf},
           ${deviceOfLeaf(v.owner, v.leaf)}
    WHERE NOT EXISTS (SELECT 1 FROM duplicate)${unrecorded(keyed)}
    ON CONFLICT (owner_did, cipher_suite) WHERE last_resort DO UPDATE
      SET data = EXCLUDED.data, data_sha256 = EXCLUDED.data_sha256, ref = EXCLUDED.ref,
          created_at = EXCLUDED.created_at, expires_at = EXCLUDED.expires_at, handed_out = 0,
          leaf_signature_key = EXCLUDED.leaf_signature_key, device_id = EXCLUDED.device_id
    RETURNING id
  )`

/** The statement that publishes a key package (and a keyed publish's record, answered by `response`). */
const publishStatement = byShape(
  (shape: { lastResort: boolean; response?: ResponseSql | undefined }) => {
    const keyed = shape.response !== undefined
    const added = shape.lastResort ? 0 : 1
    const name = `publish_${shape.lastResort ? 'last_resort' : 'key_package'}${keyed ? '_keyed' : ''}`
    const columns = `available int, inserted boolean${keyed ? `, ${FOUND_COLUMNS}` : ''}`
    return onShard(name, { shardKey: 'owner', columns }, (v: PublishValues & KeyValues) =>
      writeStatement(shape.response && { values: v, response: shape.response }, {
        ctes: sql`
          counted AS (
            SELECT count(*)::int AS available FROM key_package WHERE owner_did = ${v.owner} AND ${AVAILABLE}
          ), ${shape.lastResort ? lastResortInsert(v, keyed) : regularInsert(v, keyed)}, published AS (
            SELECT available + ${sql.lit(added)} AS available FROM counted, inserted
          )`,
        written: 'published',
        select: sql<{
          available: number
          inserted: boolean
        }>`SELECT available, EXISTS (SELECT 1 FROM inserted) AS inserted FROM counted`,
      }),
    )
  },
  (shape) => `${shape.lastResort}/${shape.response?.name ?? ''}`,
)

/**
 * Stores a key package and returns how many regular ones the owner now has
 * available (a last-resort one is neither counted nor limited), in one
 * statement: the count, the insert, and a keyed write's check and record
 * (src/idempotency/statement.ts).
 */
export async function publishKeyPackage(db: Db, args: PublishKeyPackageArgs, record?: RecordedWrite): Promise<number> {
  const write = publishStatement({ lastResort: args.lastResort, response: record?.response })
  const values: PublishValues = {
    owner: args.owner,
    cipherSuite: args.cipherSuite,
    data: args.data,
    dataSha256: sha256(args.data),
    ref: args.ref,
    leaf: args.signatureKey,
    expiresAt: args.expiresAt,
    maxPerUser: args.maxPerUser,
  }
  const rows = await executeRecorded(db, write, values, record).catch((err: unknown) => {
    throw isDuplicatePackage(err) ? duplicate() : err
  })
  const { available, inserted } = rows[0] as { available: number; inserted: boolean }
  if (inserted) return available + (args.lastResort ? 0 : 1)
  if (!args.lastResort && available >= args.maxPerUser) {
    throw tooManyKeyPackages(args.maxPerUser)
  }
  throw duplicate()
}

/** One of a batch of regular key packages, checked (src/api/input.ts). */
export interface BatchKeyPackage {
  cipherSuite: string
  data: Uint8Array
  ref: Uint8Array
  signatureKey: Uint8Array
  expiresAt: Date
  /** The item's own idempotency key: its record's scope and the item's fingerprint (src/xrpc/idempotency-key.ts). */
  key?: { scope: Buffer; fingerprint: Buffer }
}

/**
 * What became of each item of a batch: stored; stored before under its key
 * (`replayed`), or its key already used for another item (`keyReused`); not
 * stored because the owner has it already (`duplicate`) or has as many as
 * allowed (`full`).
 */
export type BatchOutcome = 'stored' | 'replayed' | 'keyReused' | 'duplicate' | 'full'

const OUTCOMES: Record<string, BatchOutcome> = {
  stored: 'stored',
  replayed: 'replayed',
  key_reused: 'keyReused',
  duplicate: 'duplicate',
  full: 'full',
}

/** A batch's values: the owner's, and each item's by position (arrays), with its key's. */
export interface BatchValues extends ItemKeyValues {
  owner: string
  maxPerUser: number
  datas: Uint8Array[]
  sha256s: Buffer[]
  refs: Uint8Array[]
  suites: string[]
  expiries: Date[]
  leafKeys: Uint8Array[]
  keyScopes: Array<Buffer | null>
  keyFingerprints: Array<Buffer | null>
}

export const batchValues = (
  owner: string,
  maxPerUser: number,
  items: BatchKeyPackage[],
  keys: Omit<ItemKeyValues, 'keyShard' | 'keyCaller'>,
): BatchValues => ({
  owner,
  maxPerUser,
  datas: items.map((item) => item.data),
  sha256s: items.map((item) => sha256(item.data)),
  refs: items.map((item) => item.ref),
  suites: items.map((item) => item.cipherSuite),
  expiries: items.map((item) => item.expiresAt),
  leafKeys: items.map((item) => item.signatureKey),
  keyScopes: items.map((item) => item.key?.scope ?? null),
  keyFingerprints: items.map((item) => item.key?.fingerprint ?? null),
  // Key packages, and so the records of their keys, live with their owner.
  keyShard: owner,
  keyCaller: owner,
  ...keys,
})

/**
 * The CTEs that store a batch of regular key packages, each as
 * publishKeyPackage would (not past the owner's limit, in the batch's
 * order; the same bytes or the same package stored once; the last-resort
 * package of a suite counts its hand-outs afresh), each keyed item recorded
 * under its key, an item found under its key not stored again. `device` is
 * the device each is bound to (a row of `fresh f`); `leaving`, how many
 * available packages the statement withdraws besides. Ends with `outcomes
 * (n, outcome)`, by position from 1.
 */
export function batchCtes(
  v: BatchValues,
  opts: { device: RawBuilder<unknown>; leaving: RawBuilder<unknown> },
): RawBuilder<unknown> {
  return sql`
    items AS (
      SELECT * FROM unnest(${v.datas}::bytea[], ${v.sha256s}::bytea[], ${v.refs}::bytea[], ${v.suites}::text[],
                           ${v.expiries}::timestamptz[], ${v.leafKeys}::bytea[], ${v.keyScopes}::bytea[],
                           ${v.keyFingerprints}::bytea[])
        WITH ORDINALITY AS item(data, data_sha256, ref, cipher_suite, expires_at, leaf, key_scope, key_fingerprint, n)
    ), ${itemRecordsCte(v)}, counted AS (
      SELECT count(*)::int - ${opts.leaving} AS available FROM key_package WHERE owner_did = ${v.owner} AND ${AVAILABLE}
    ), fresh AS (
      SELECT item.*, row_number() OVER (ORDER BY item.n) AS rank FROM items item
      WHERE NOT EXISTS (SELECT FROM item_records r WHERE r.n = item.n)
        AND NOT EXISTS (
          SELECT FROM key_package kp
          WHERE kp.owner_did = ${v.owner} AND (kp.data_sha256 = item.data_sha256 OR kp.ref = item.ref))
        AND NOT EXISTS (
          SELECT FROM items earlier
          WHERE earlier.n < item.n AND (earlier.data_sha256 = item.data_sha256 OR earlier.ref = item.ref))
    ), inserted AS (
      INSERT INTO key_package (owner_did, cipher_suite, data, data_sha256, ref, expires_at, leaf_signature_key, device_id)
      SELECT ${v.owner}, f.cipher_suite, f.data, f.data_sha256, f.ref, f.expires_at, f.leaf, ${opts.device}
      FROM fresh f, counted WHERE f.rank <= ${v.maxPerUser} - counted.available
      ON CONFLICT DO NOTHING
      RETURNING ref, cipher_suite
    ), restarted AS (
      UPDATE key_package SET handed_out = 0
      WHERE owner_did = ${v.owner} AND last_resort AND handed_out > 0
        AND cipher_suite IN (SELECT cipher_suite FROM inserted)
    ), written AS (
      SELECT f.n, f.ref, f.key_scope, f.key_fingerprint FROM fresh f JOIN inserted i ON i.ref = f.ref
    ), ${itemRecordedCte(v, sql`json_build_object('keyPackageHash', encode(written.ref, 'hex'))`)}, outcomes AS (
      SELECT item.n,
             CASE WHEN r.n IS NOT NULL THEN
                    CASE WHEN r.fingerprint = item.key_fingerprint THEN 'replayed' ELSE 'key_reused' END
                  WHEN w.n IS NOT NULL THEN 'stored'
                  WHEN f.rank > ${v.maxPerUser} - counted.available THEN 'full'
                  ELSE 'duplicate' END AS outcome
      FROM items item CROSS JOIN counted
      LEFT JOIN item_records r ON r.n = item.n
      LEFT JOIN written w ON w.n = item.n
      LEFT JOIN fresh f ON f.n = item.n
    )`
}

/** The outcomes column of a batch's statement, in the items' order. */
export const outcomesColumn = sql`ARRAY(SELECT outcome FROM outcomes ORDER BY n) AS outcomes`

export const toOutcomes = (outcomes: string[]): BatchOutcome[] =>
  outcomes.map((outcome) => OUTCOMES[outcome] as BatchOutcome)

/** Stores a batch of key packages, each bound to the owner's device whose MLS key signed it, with its key's record. */
const publishBatchStatement = onShard(
  'publish_key_packages',
  { shardKey: 'owner', columns: 'outcomes text[]' },
  (v: BatchValues) => sql<{ outcomes: string[] }>`
    WITH ${batchCtes(v, { device: deviceOfLeaf(v.owner, sql`f.leaf`), leaving: sql`0` })}
    SELECT ${outcomesColumn}`,
)

/**
 * Stores `items` (regular key packages of `owner`, checked) in one
 * statement on the owner's shard: what became of each, in order. An item
 * not stored as a duplicate may have lost to a concurrent request with its
 * key, which stored the same package: the record under its key decides.
 */
export async function publishKeyPackageBatch(
  db: Db,
  args: { owner: string; maxPerUser: number; items: BatchKeyPackage[]; nsid: string; ttlSeconds: number },
): Promise<BatchOutcome[]> {
  const values = batchValues(args.owner, args.maxPerUser, args.items, {
    keyNsid: args.nsid,
    keyTtlSeconds: args.ttlSeconds,
  })
  const { rows } = await executeOnShard(db, publishBatchStatement, values)
  const outcomes = toOutcomes((rows[0] as { outcomes: string[] }).outcomes)
  return Promise.all(
    outcomes.map(async (outcome, i) => {
      const key = args.items[i]?.key
      if (outcome !== 'duplicate' || !key) return outcome
      const record = await findRecord(db, { shardKey: args.owner, scope: key.scope })
      if (!record) return outcome
      return record.fingerprint.equals(key.fingerprint) ? 'replayed' : 'keyReused'
    }),
  )
}

export interface ClaimedKeyPackage {
  did: string
  keyPackage: Uint8Array
  /** Its KeyPackageRef (RFC 9420 §5.2). */
  ref: Uint8Array
  cipherSuite: string
  /** The owner had no regular package left: this one is not consumed, others may get it too. */
  lastResort: boolean
}

/** The owner opted out of MLS chat (optOut): none of its key packages is handed out. */
const optedOut = (did: unknown) => sql`EXISTS (SELECT FROM opt_out WHERE did = ${did})`

/**
 * One owner's key packages handed out, one per device: the oldest available
 * regular one of each of its devices (its packages bound to no device count
 * as one more), marked consumed (SKIP LOCKED makes concurrent callers take
 * different packages instead of waiting for, or sharing, the same one);
 * with none left, the owner's last-resort package, if it has one (the
 * newest, when no suite is asked for), which is not consumed: its
 * hand-outs are counted for its owner, and recorded for the caller, whose
 * Welcome may then name it. Nothing for an owner who opted out.
 */
const claimStatement = onShard(
  'claim_key_package',
  { shardKey: 'did', columns: 'cipher_suite text, data bytea, ref bytea, last_resort boolean' },
  (v: { did: string; suite: string | null; claimedBy: string }) => {
    const offered = sql`owner_did = ${v.did} AND ${AVAILABLE}
      AND (${v.suite}::text IS NULL OR cipher_suite = ${v.suite}::text)`
    return sql<{ cipher_suite: string; data: Uint8Array; ref: Uint8Array; last_resort: boolean }>`
    WITH devices AS (
      SELECT DISTINCT device_id FROM key_package WHERE ${offered} AND NOT ${optedOut(v.did)}
    ), regular AS (
      SELECT picked.id FROM devices, LATERAL (
        SELECT id FROM key_package
        WHERE ${offered} AND device_id IS NOT DISTINCT FROM devices.device_id
        ORDER BY created_at, id
        LIMIT 1
        FOR UPDATE SKIP LOCKED
      ) picked
    ), claimed AS (
      UPDATE key_package SET consumed_at = now(), consumed_by = ${v.claimedBy}
      FROM regular WHERE key_package.owner_did = ${v.did} AND key_package.id = regular.id
      RETURNING key_package.cipher_suite, key_package.data, key_package.ref
    ), fallback AS (
      SELECT id, cipher_suite, data, ref FROM key_package
      WHERE owner_did = ${v.did} AND last_resort AND expires_at > now()
        AND (${v.suite}::text IS NULL OR cipher_suite = ${v.suite}::text)
        AND NOT EXISTS (SELECT 1 FROM claimed) AND NOT ${optedOut(v.did)}
      ORDER BY created_at DESC
      LIMIT 1
    ), counted AS (
      UPDATE key_package SET handed_out = handed_out + 1
      FROM fallback WHERE key_package.owner_did = ${v.did} AND key_package.id = fallback.id
    ), recorded AS (
      INSERT INTO last_resort_handout (owner_did, ref, claimed_by)
      SELECT ${v.did}, ref, ${v.claimedBy} FROM fallback
      ON CONFLICT (owner_did, ref, claimed_by) DO UPDATE SET claimed_at = EXCLUDED.claimed_at
    )
    SELECT cipher_suite, data, ref, false AS last_resort FROM claimed
    UNION ALL SELECT cipher_suite, data, ref, true FROM fallback`
  },
)

/**
 * Hands out key packages of each DID, one per device (claimStatement), one
 * statement per DID, each on its owner's shard, side by side.
 */
export async function claimKeyPackages(
  db: Db,
  args: { dids: string[]; cipherSuite?: string | undefined; claimedBy: string },
): Promise<{ keyPackages: ClaimedKeyPackage[]; missing: string[] }> {
  const dids = [...new Set(args.dids)]
  const suite = args.cipherSuite ?? null
  const claims = await Promise.all(
    dids.map(async (did) => {
      const { rows } = await executeOnShard(db, claimStatement, { did, suite, claimedBy: args.claimedBy })
      return rows.map((r) => ({
        did,
        keyPackage: r.data,
        ref: r.ref,
        cipherSuite: r.cipher_suite,
        lastResort: r.last_resort,
      }))
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

/**
 * One key package of a given device handed out to `claimedBy` (the oldest
 * available; SKIP LOCKED as the claim): for adding that device to a
 * conversation it was not in (a pending device addition). None left: none.
 */
const deviceClaimStatement = onShard(
  'claim_key_package_of_device',
  { shardKey: 'owner', columns: 'cipher_suite text, data bytea, ref bytea' },
  (v: { owner: string; deviceId: string; claimedBy: string }) => sql<{
    cipher_suite: string
    data: Uint8Array
    ref: Uint8Array
  }>`
    WITH regular AS (
      SELECT id FROM key_package
      WHERE owner_did = ${v.owner} AND device_id = ${v.deviceId} AND ${AVAILABLE}
      ORDER BY created_at, id
      LIMIT 1
      FOR UPDATE SKIP LOCKED
    )
    UPDATE key_package SET consumed_at = now(), consumed_by = ${v.claimedBy}
    FROM regular WHERE key_package.owner_did = ${v.owner} AND key_package.id = regular.id
    RETURNING key_package.cipher_suite, key_package.data, key_package.ref`,
)

export async function claimDeviceKeyPackage(
  db: Db,
  args: { owner: string; deviceId: string; claimedBy: string },
): Promise<(ClaimedKeyPackage & { ref: Uint8Array }) | undefined> {
  const [row] = (await executeOnShard(db, deviceClaimStatement, args)).rows
  return (
    row && { did: args.owner, keyPackage: row.data, cipherSuite: row.cipher_suite, lastResort: false, ref: row.ref }
  )
}

/** An owner's key packages counted, as getKeyPackageStats answers them (`threshold`: the server's setting). */
export async function keyPackageStats(
  db: Db,
  args: { owner: string; cipherSuite?: string | undefined; threshold: number },
): Promise<GetKeyPackageStats.Output> {
  const row = await db
    .selectFrom('key_package')
    .select([
      sql<number>`count(*) FILTER (WHERE ${AVAILABLE})`.as('available'),
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

/** The buckets of `keyPackageBuckets`: how many key packages a caller has left. */
export const KEY_PACKAGE_BUCKETS = ['0', '1-4', '5-19', '20+'] as const

/**
 * How many owners have how many regular key packages left, by bucket: a
 * crowd in the low buckets means clients are not replenishing.
 */
export async function keyPackageBuckets(db: Db): Promise<Record<(typeof KEY_PACKAGE_BUCKETS)[number], number>> {
  const { rows } = await sql<{ bucket: string; owners: number }>`
    SELECT CASE WHEN n = 0 THEN '0' WHEN n < 5 THEN '1-4' WHEN n < 20 THEN '5-19' ELSE '20+' END AS bucket,
           count(*)::int AS owners
    FROM (SELECT count(*) FILTER (WHERE ${AVAILABLE}) AS n FROM key_package GROUP BY owner_did) AS per_owner
    GROUP BY bucket`.execute(db)
  const owners = (bucket: string) => rows.find((row) => row.bucket === bucket)?.owners ?? 0
  return { '0': owners('0'), '1-4': owners('1-4'), '5-19': owners('5-19'), '20+': owners('20+') }
}

/**
 * A device's unused key packages it no longer holds (the refs it holds are
 * `held`), withdrawn: no one could join with them. Answers their refs, and
 * the refs of the device's unused packages left (hex), of which
 * `remainingAvailable` can still be handed out (unexpired).
 */
const withdrawUnheldStatement = statement(
  'withdraw_unheld_key_packages',
  (v: { owner: string; deviceId: string; held: Buffer[] }) => sql<{
    withdrawn: string[]
    remaining: string[]
    remaining_available: number
  }>`
    WITH unused AS (
      SELECT ref, ref = ANY(${v.held}::bytea[]) AS held, expires_at > now() AS unexpired FROM key_package
      WHERE owner_did = ${v.owner} AND device_id = ${v.deviceId} AND consumed_at IS NULL
    ), withdrawn AS (
      DELETE FROM key_package
      WHERE owner_did = ${v.owner} AND device_id = ${v.deviceId} AND consumed_at IS NULL
        AND ref IN (SELECT ref FROM unused WHERE NOT held)
      RETURNING encode(ref, 'hex') AS ref
    )
    SELECT ARRAY(SELECT ref FROM withdrawn ORDER BY ref) AS withdrawn,
           ARRAY(SELECT encode(ref, 'hex') FROM unused WHERE held ORDER BY ref) AS remaining,
           (SELECT count(*)::int FROM unused WHERE held AND unexpired) AS remaining_available`,
)

export async function withdrawUnheldKeyPackages(
  db: Db,
  args: { owner: string; deviceId: string; held: Buffer[] },
): Promise<{ withdrawn: string[]; remaining: string[]; remainingAvailable: number }> {
  const [row] = (await execute(db, withdrawUnheldStatement, args)).rows
  const { withdrawn, remaining, remaining_available } = row as {
    withdrawn: string[]
    remaining: string[]
    remaining_available: number
  }
  return { withdrawn, remaining, remainingAvailable: remaining_available }
}

/**
 * The conversations whose Welcomes may wait for a device: those a Welcome
 * named one of its handed-out key packages for (reserveWelcome) within the
 * Welcomes' retention, less those of the packages it still holds (`held`).
 */
export async function welcomeConvosOfDevice(
  db: Db,
  args: { owner: string; deviceId: string; held: Buffer[]; retentionDays: number },
): Promise<string[]> {
  const rows = await db
    .selectFrom('key_package')
    .select('reserved_convo_id')
    .distinct()
    .where('owner_did', '=', args.owner)
    .where('device_id', '=', args.deviceId)
    .where('reserved_convo_id', 'is not', null)
    .where(sql<boolean>`consumed_at > now() - make_interval(days => ${args.retentionDays})`)
    .$if(args.held.length > 0, (qb) => qb.where(sql<boolean>`NOT (ref = ANY(${args.held}::bytea[]))`))
    .execute()
  return rows.map((row) => row.reserved_convo_id as string)
}

/** A page of an owner's key packages: the cursor is the ordering time in microseconds and the id, of the last one. */
function parsePackageCursor(cursor: string): { micros: number; id: number } {
  const match = /^(\d{1,17})_(\d{1,15})$/.exec(cursor)
  if (!match) throw invalidRequest('InvalidCursor', 'Malformed pagination cursor')
  return { micros: Number(match[1]), id: Number(match[2]) }
}

/** An owner's key packages (those with a KeyPackageRef: all since migration 003), newest first by `order`, one page. */
async function keyPackagePage(
  db: Db,
  args: { owner: string; order: 'created_at' | 'consumed_at'; limit: number; cursor: string | undefined },
) {
  const after = args.cursor === undefined ? undefined : parsePackageCursor(args.cursor)
  const micros = sql<number>`(extract(epoch from ${sql.ref(args.order)}) * 1000000)::bigint`
  const rows = await db
    .selectFrom('key_package')
    .select(['id', 'ref', 'cipher_suite', 'created_at', 'consumed_at', 'reserved_convo_id', 'device_id'])
    .select(micros.as('micros'))
    .where('owner_did', '=', args.owner)
    .where('ref', 'is not', null)
    .where(args.order, 'is not', null)
    .$if(after !== undefined, (qb) => qb.where(sql<boolean>`(${micros}, id) < (${after?.micros}, ${after?.id})`))
    .orderBy(micros, 'desc')
    .orderBy('id', 'desc')
    .limit(args.limit + 1)
    .execute()
  const page = rows.slice(0, args.limit)
  const last = page.at(-1)
  // The conversations their Welcomes went to, by their MLS group ids (on the conversations' shards).
  const convoIds = [...new Set(page.flatMap((row) => (row.reserved_convo_id ? [row.reserved_convo_id] : [])))]
  const convos = convoIds.length
    ? await db.selectFrom('convo').select(['id', 'group_id', 'name']).where('id', 'in', convoIds).execute()
    : []
  const convoOf = new Map(convos.map((convo) => [convo.id, convo]))
  return {
    packages: page.map((row) => ({
      ...row,
      hash: Buffer.from(row.ref as Uint8Array).toString('hex'),
      convo: row.reserved_convo_id ? convoOf.get(row.reserved_convo_id) : undefined,
    })),
    ...(rows.length > args.limit && last ? { cursor: `${last.micros}_${last.id}` } : {}),
  }
}

/** An owner's key packages counted, and those handed out, newest first (getKeyPackageStatus). */
export async function keyPackageStatus(
  db: Db,
  args: { owner: string; limit: number; cursor: string | undefined },
): Promise<GetKeyPackageStatus.Output> {
  const counts = await db
    .selectFrom('key_package')
    .select([
      sql<number>`count(*)::int`.as('total'),
      sql<number>`count(*) FILTER (WHERE ${AVAILABLE})::int`.as('available'),
      sql<number>`count(*) FILTER (WHERE consumed_at IS NOT NULL)::int`.as('consumed'),
    ])
    .where('owner_did', '=', args.owner)
    .executeTakeFirstOrThrow()
  const { packages, cursor } = await keyPackagePage(db, { ...args, order: 'consumed_at' })
  return {
    totalUploaded: counts.total,
    available: counts.available,
    consumed: counts.consumed,
    consumedPackages: packages.map((kp) => ({
      keyPackageHash: kp.hash,
      consumedAt: iso(kp.consumed_at as Date),
      cipherSuite: kp.cipher_suite,
      ...(kp.convo ? { usedInGroup: kp.convo.group_id.toLowerCase() } : {}),
    })),
    ...(cursor ? { cursor } : {}),
  }
}

/** An owner's key packages, newest first, and what became of them (getKeyPackageHistory). */
export async function keyPackageHistory(
  db: Db,
  args: { owner: string; limit: number; cursor: string | undefined },
): Promise<GetKeyPackageHistory.Output> {
  const { packages, cursor } = await keyPackagePage(db, { ...args, order: 'created_at' })
  return {
    history: packages.map((kp) => ({
      packageId: kp.hash,
      createdAt: iso(kp.created_at),
      cipherSuite: kp.cipher_suite,
      ...(kp.consumed_at ? { consumedAt: iso(kp.consumed_at) } : {}),
      ...(kp.convo ? { consumedForConvo: kp.convo.group_id.toLowerCase() } : {}),
      ...(kp.convo?.name ? { consumedForConvoName: kp.convo.name } : {}),
      ...(kp.device_id ? { deviceId: kp.device_id } : {}),
    })),
    ...(cursor ? { cursor } : {}),
  }
}
