import { createHash } from 'node:crypto'
import { sql } from 'kysely'
import { executeOnShard, onShard } from '../db/delegated.js'
import { violatedUniqueKey } from '../db/errors.js'
import type { Db } from '../db/schema.js'
import { byShape } from '../db/statement.js'
import type { Step, Steps } from '../db/steps.js'
import {
  executeRecorded,
  recordedSteps,
  type KeyValues,
  type RecordedWrite,
  type ResponseSql,
} from '../idempotency/statement.js'
import type * as GetKeyPackageStats from '../lexicon/types/blue.catbird.mls.getKeyPackageStats.js'
import { conflict, invalidRequest } from './errors.js'

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
  expiresAt: Date
  maxPerUser: number
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
const regularSteps = (v: PublishValues): Step[] => [
  {
    name: 'inserted',
    insert: 'key_package',
    uses: ['counted'],
    when: sql`counted.available < ${v.maxPerUser}`,
    values: {
      owner_did: v.owner,
      cipher_suite: v.cipherSuite,
      data: v.data,
      data_sha256: v.dataSha256,
      ref: v.ref,
      expires_at: v.expiresAt,
    },
    tail: sql`ON CONFLICT DO NOTHING`,
    returning: sql`id`,
  },
  {
    name: 'restarted',
    update: 'key_package',
    set: sql`handed_out = 0`,
    where: sql`owner_did = ${v.owner} AND cipher_suite = ${v.cipherSuite} AND last_resort AND handed_out > 0`,
    after: ['inserted'],
  },
]

/**
 * Stores the owner's last-resort package of its suite, replacing the
 * previous one in place (one per owner and suite, by a unique index: of two
 * published at once, the later wins). Who was handed the replaced one is
 * forgotten: no Welcome may name it now.
 */
const lastResortSteps = (v: PublishValues): Step[] => [
  {
    name: 'duplicate',
    select: sql`1 AS one`,
    from: 'key_package',
    where: sql`owner_did = ${v.owner} AND (data_sha256 = ${v.dataSha256} OR ref = ${v.ref})`,
    tail: sql`LIMIT 1`,
  },
  {
    name: 'replaced',
    select: sql`ref`,
    from: 'key_package',
    where: sql`owner_did = ${v.owner} AND cipher_suite = ${v.cipherSuite} AND last_resort`,
  },
  {
    name: 'forgotten',
    delete: 'last_resort_handout',
    where: sql`owner_did = ${v.owner} AND last_resort_handout.ref = replaced.ref`,
    uses: ['replaced'],
    unless: ['duplicate'],
  },
  {
    name: 'inserted',
    insert: 'key_package',
    unless: ['duplicate'],
    values: {
      owner_did: v.owner,
      cipher_suite: v.cipherSuite,
      data: v.data,
      data_sha256: v.dataSha256,
      ref: v.ref,
      expires_at: v.expiresAt,
      last_resort: sql`true`,
    },
    tail: sql`ON CONFLICT (owner_did, cipher_suite) WHERE last_resort DO UPDATE
      SET data = EXCLUDED.data, data_sha256 = EXCLUDED.data_sha256, ref = EXCLUDED.ref,
          created_at = EXCLUDED.created_at, expires_at = EXCLUDED.expires_at, handed_out = 0`,
    returning: sql`id`,
  },
]

/** The write that publishes a key package (and a keyed publish's record, answered by `response`). */
const publishStatement = byShape(
  (shape: { lastResort: boolean; response?: ResponseSql | undefined }) => {
    const { response } = shape
    const added = shape.lastResort ? 0 : 1
    const name = `publish_${shape.lastResort ? 'last_resort' : 'key_package'}${response ? '_keyed' : ''}`
    return onShard<PublishValues & KeyValues, { available: number; inserted: boolean }>(
      name,
      { shardKey: 'owner' },
      (v, refs) => {
        const write: Steps = {
          steps: [
            {
              name: 'counted',
              select: sql`count(*)::int AS available`,
              from: 'key_package',
              where: sql`owner_did = ${v.owner} AND ${AVAILABLE}`,
            },
            ...(shape.lastResort ? lastResortSteps(v) : regularSteps(v)),
            // The count after the publish: what a keyed publish records.
            {
              name: 'published',
              select: sql`counted.available + ${sql.lit(added)} AS available`,
              uses: ['counted', 'inserted'],
            },
          ],
          result: {
            columns: { available: 'int', inserted: 'boolean' },
            rows: [
              { from: 'counted', values: { available: sql`counted.available`, inserted: refs.found('inserted') } },
            ],
          },
        }
        return response ? recordedSteps({ shard: v.owner, values: v, response, written: 'published' }, write) : write
      },
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
    expiresAt: args.expiresAt,
    maxPerUser: args.maxPerUser,
  }
  const rows = await executeRecorded(db, write, values, record).catch((err: unknown) => {
    throw isDuplicatePackage(err) ? duplicate() : err
  })
  const { available, inserted } = rows[0] as { available: number; inserted: boolean }
  if (inserted) return available + (args.lastResort ? 0 : 1)
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
 * One owner's key package handed out: the oldest available regular one,
 * marked consumed (SKIP LOCKED makes concurrent callers take different
 * packages instead of waiting for, or sharing, the same one); with none
 * left, the owner's last-resort package, if it has one (the newest, when no
 * suite is asked for), which is not consumed: its hand-outs are counted for
 * its owner, and recorded for the caller, whose Welcome may then name it.
 */
const claimStatement = onShard<
  { did: string; suite: string | null; claimedBy: string },
  { cipher_suite: string; data: Uint8Array; last_resort: boolean }
>('claim_key_package', { shardKey: 'did' }, (v) => {
  const ofSuite = sql`(${v.suite}::text IS NULL OR cipher_suite = ${v.suite}::text)`
  return {
    steps: [
      {
        name: 'regular',
        select: sql`id`,
        from: 'key_package',
        where: sql`owner_did = ${v.did} AND ${AVAILABLE} AND ${ofSuite}`,
        tail: sql`ORDER BY created_at, id LIMIT 1 FOR UPDATE SKIP LOCKED`,
      },
      {
        name: 'claimed',
        update: 'key_package',
        set: sql`consumed_at = now(), consumed_by = ${v.claimedBy}`,
        where: sql`key_package.owner_did = ${v.did} AND key_package.id = regular.id`,
        uses: ['regular'],
        returning: sql`key_package.cipher_suite, key_package.data`,
      },
      {
        name: 'fallback',
        select: sql`id, cipher_suite, data, ref`,
        from: 'key_package',
        where: sql`owner_did = ${v.did} AND last_resort AND expires_at > now() AND ${ofSuite}`,
        tail: sql`ORDER BY created_at DESC LIMIT 1`,
        unless: ['claimed'],
      },
      {
        name: 'handed',
        update: 'key_package',
        set: sql`handed_out = handed_out + 1`,
        where: sql`key_package.owner_did = ${v.did} AND key_package.id = fallback.id`,
        uses: ['fallback'],
      },
      {
        name: 'recorded',
        insert: 'last_resort_handout',
        values: { owner_did: v.did, ref: sql`fallback.ref`, claimed_by: v.claimedBy },
        tail: sql`ON CONFLICT (owner_did, ref, claimed_by) DO UPDATE SET claimed_at = EXCLUDED.claimed_at`,
        uses: ['fallback'],
      },
    ],
    result: {
      columns: { cipher_suite: 'text', data: 'bytea', last_resort: 'boolean' },
      rows: [
        {
          from: 'claimed',
          values: { cipher_suite: sql`claimed.cipher_suite`, data: sql`claimed.data`, last_resort: sql`false` },
        },
        {
          from: 'fallback',
          values: { cipher_suite: sql`fallback.cipher_suite`, data: sql`fallback.data`, last_resort: sql`true` },
        },
      ],
    },
  }
})

/** Hands out one key package per DID (claimStatement), one statement per DID, each on its owner's shard, side by side. */
export async function claimKeyPackages(
  db: Db,
  args: { dids: string[]; cipherSuite?: string | undefined; claimedBy: string },
): Promise<{ keyPackages: ClaimedKeyPackage[]; missing: string[] }> {
  const dids = [...new Set(args.dids)]
  const suite = args.cipherSuite ?? null
  const claims = await Promise.all(
    dids.map(async (did) => {
      const { rows } = await executeOnShard(db, claimStatement, { did, suite, claimedBy: args.claimedBy })
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

/**
 * One key package of a given device handed out to `claimedBy` (the oldest
 * available; SKIP LOCKED as the claim): for adding that device to a
 * conversation it was not in (a pending device addition). None left: none.
 */
const deviceClaimStatement = onShard<
  { owner: string; deviceId: string; claimedBy: string },
  { cipher_suite: string; data: Uint8Array; ref: Uint8Array }
>('claim_key_package_of_device', { shardKey: 'owner' }, (v) => ({
  steps: [
    {
      name: 'regular',
      select: sql`id`,
      from: 'key_package',
      where: sql`owner_did = ${v.owner} AND device_id = ${v.deviceId} AND ${AVAILABLE}`,
      tail: sql`ORDER BY created_at, id LIMIT 1 FOR UPDATE SKIP LOCKED`,
    },
    {
      name: 'claimed',
      update: 'key_package',
      set: sql`consumed_at = now(), consumed_by = ${v.claimedBy}`,
      where: sql`key_package.owner_did = ${v.owner} AND key_package.id = regular.id`,
      uses: ['regular'],
      returning: sql`key_package.cipher_suite, key_package.data, key_package.ref`,
    },
  ],
  result: {
    columns: { cipher_suite: 'text', data: 'bytea', ref: 'bytea' },
    rows: [
      {
        from: 'claimed',
        values: { cipher_suite: sql`claimed.cipher_suite`, data: sql`claimed.data`, ref: sql`claimed.ref` },
      },
    ],
  },
}))

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
