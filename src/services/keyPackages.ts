import { createHash } from 'node:crypto'
import { sql, type RawBuilder } from 'kysely'
import { executeOnShard, onShard } from '../db/delegated.js'
import { violatedUniqueKey } from '../db/errors.js'
import type { Db } from '../db/schema.js'
import { byShape, execute, statement } from '../db/statement.js'
import type { Step, Steps } from '../db/steps.js'
import {
  executeRecorded,
  findRecord,
  itemRecordedCte,
  itemRecordsCte,
  recordedSteps,
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

/** A published package's row, bound to the device of step `leaf_device`. */
const packageRow = (v: PublishValues) => ({
  owner_did: v.owner,
  cipher_suite: v.cipherSuite,
  data: v.data,
  data_sha256: v.dataSha256,
  ref: v.ref,
  expires_at: v.expiresAt,
  leaf_signature_key: v.leaf,
  device_id: sql`leaf_device.device_id`,
})

/**
 * Stores a regular key package (not past the owner's limit; the same bytes,
 * or the same package framed another way, are stored once); the
 * last-resort one of its suite counts its hand-outs afresh.
 */
const regularSteps = (v: PublishValues): Step[] => [
  {
    name: 'inserted',
    insert: 'key_package',
    uses: ['counted', 'leaf_device'],
    when: sql`counted.available < ${v.maxPerUser}`,
    values: packageRow(v),
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
    uses: ['leaf_device'],
    unless: ['duplicate'],
    values: { ...packageRow(v), last_resort: sql`true` },
    tail: sql`ON CONFLICT (owner_did, cipher_suite) WHERE last_resort DO UPDATE
      SET data = EXCLUDED.data, data_sha256 = EXCLUDED.data_sha256, ref = EXCLUDED.ref,
          created_at = EXCLUDED.created_at, expires_at = EXCLUDED.expires_at, handed_out = 0,
          leaf_signature_key = EXCLUDED.leaf_signature_key, device_id = EXCLUDED.device_id`,
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
            // The owner's device whose MLS key signed it (NULL: none), one row always: the package is bound to it.
            {
              name: 'leaf_device',
              select: sql`max(device_id) AS device_id`,
              from: 'device',
              where: sql`user_did = ${v.owner} AND mls_signature_key = ${v.leaf}`,
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

/**
 * A batch's function body: what batchCtes does, an item at a time, in
 * order; each statement on one table, on the owner's shard. `first` runs
 * before the count (a registration's own writes), `device` sets
 * `item_device` for the item `item` (1, 2, ...), `result` ends it (the
 * outcomes are in `outcomes`).
 */
export function batchFunctionBody(
  v: BatchValues,
  opts: {
    declare?: RawBuilder<unknown>
    first?: RawBuilder<unknown>
    device: RawBuilder<unknown>
    result: RawBuilder<unknown>
  },
): RawBuilder<unknown> {
  const at = (values: unknown) => sql`(${values})[item]`
  return sql`DECLARE
      item int;
      outcome text;
      outcomes text[] := '{}';
      live_count int;
      fresh_rank int := 0;
      item_device text;
      item_record record;
      written record;
      written_suites text[] := '{}';
      recorded_scopes bytea[] := '{}';
      ${opts.declare ?? sql``}
    BEGIN
      ${opts.first ?? sql``}
      SELECT count(*)::int INTO live_count FROM key_package WHERE owner_did = ${v.owner} AND ${AVAILABLE};
      FOR item IN 1 .. coalesce(array_length(${v.datas}::bytea[], 1), 0) LOOP
        outcome := NULL;
        -- A record this call wrote is not one the batch found (the statement reads them all before it writes).
        IF ${at(v.keyScopes)} IS NOT NULL AND NOT ${at(v.keyScopes)} = ANY (recorded_scopes) THEN
          SELECT fingerprint INTO item_record FROM idempotency_key
          WHERE shard_key = ${v.keyShard} AND scope_hash = ${at(v.keyScopes)} AND expires_at > now();
          IF FOUND THEN
            outcome := CASE WHEN item_record.fingerprint = ${at(v.keyFingerprints)} THEN 'replayed' ELSE 'key_reused' END;
          END IF;
        END IF;
        IF outcome IS NULL THEN
          PERFORM 1 FROM key_package
          WHERE owner_did = ${v.owner} AND (data_sha256 = ${at(v.sha256s)} OR ref = ${at(v.refs)});
          IF NOT FOUND THEN
            -- An earlier item of the batch, whatever became of it.
            PERFORM 1 FROM unnest((${v.sha256s})[1:item - 1], (${v.refs})[1:item - 1]) AS earlier(data_sha256, ref)
            WHERE earlier.data_sha256 = ${at(v.sha256s)} OR earlier.ref = ${at(v.refs)};
          END IF;
          IF FOUND THEN outcome := 'duplicate'; END IF;
        END IF;
        IF outcome IS NULL THEN
          fresh_rank := fresh_rank + 1;
          IF fresh_rank > ${v.maxPerUser} - live_count THEN
            outcome := 'full';
          ELSE
            ${opts.device}
            INSERT INTO key_package (owner_did, cipher_suite, data, data_sha256, ref, expires_at, leaf_signature_key, device_id)
            VALUES (${v.owner}, ${at(v.suites)}, ${at(v.datas)}, ${at(v.sha256s)}, ${at(v.refs)}, ${at(v.expiries)},
                    ${at(v.leafKeys)}, item_device)
            ON CONFLICT DO NOTHING
            RETURNING ref, cipher_suite INTO written;
            IF NOT FOUND THEN
              outcome := 'duplicate';
            ELSE
              outcome := 'stored';
              written_suites := written_suites || written.cipher_suite;
              IF ${at(v.keyScopes)} IS NOT NULL THEN
                INSERT INTO idempotency_key (shard_key, scope_hash, caller_did, nsid, fingerprint, status, response, expires_at)
                VALUES (${v.keyShard}, ${at(v.keyScopes)}, ${v.keyCaller}, ${v.keyNsid}, ${at(v.keyFingerprints)}, 200,
                        json_build_object('keyPackageHash', encode(written.ref, 'hex')),
                        now() + make_interval(secs => ${v.keyTtlSeconds}))
                ON CONFLICT (shard_key, scope_hash) DO UPDATE SET
                  caller_did = EXCLUDED.caller_did, nsid = EXCLUDED.nsid, fingerprint = EXCLUDED.fingerprint,
                  status = EXCLUDED.status, response = EXCLUDED.response,
                  created_at = EXCLUDED.created_at, expires_at = EXCLUDED.expires_at
                WHERE idempotency_key.expires_at <= EXCLUDED.created_at;
                recorded_scopes := recorded_scopes || ${at(v.keyScopes)};
              END IF;
            END IF;
          END IF;
        END IF;
        outcomes := outcomes || outcome;
      END LOOP;
      UPDATE key_package SET handed_out = 0
      WHERE owner_did = ${v.owner} AND last_resort AND handed_out > 0 AND cipher_suite = ANY (written_suites);
      ${opts.result}
    END`
}

/** The outcomes column of a batch's statement, in the items' order. */
export const outcomesColumn = sql`ARRAY(SELECT outcome FROM outcomes ORDER BY n) AS outcomes`

export const toOutcomes = (outcomes: string[]): BatchOutcome[] =>
  outcomes.map((outcome) => OUTCOMES[outcome] as BatchOutcome)

/** Stores a batch of key packages, each bound to the owner's device whose MLS key signed it, with its key's record. */
const publishBatchStatement = onShard<BatchValues, { outcomes: string[] }>(
  'publish_key_packages',
  { shardKey: 'owner' },
  {
    columns: { outcomes: 'text[]' },
    statement: (v) => sql`
      WITH ${batchCtes(v, { device: deviceOfLeaf(v.owner, sql`f.leaf`), leaving: sql`0` })}
      SELECT ${outcomesColumn}`,
    body: (v) =>
      batchFunctionBody(v, {
        device: sql`SELECT max(device_id) INTO item_device FROM device
                    WHERE user_did = ${v.owner} AND mls_signature_key = (${v.leafKeys})[item];`,
        result: sql`RETURN QUERY SELECT outcomes;`,
      }),
  },
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
type ClaimValues = { did: string; suite: string | null; claimedBy: string }
type ClaimedRow = { cipher_suite: string; data: Uint8Array; ref: Uint8Array; last_resort: boolean }

const ofSuite = (v: ClaimValues) => sql`(${v.suite}::text IS NULL OR cipher_suite = ${v.suite}::text)`
/** The owner's available regular packages of the suite asked for. */
const offeredBy = (v: ClaimValues) => sql`owner_did = ${v.did} AND ${AVAILABLE} AND ${ofSuite(v)}`

const claimStatement = onShard<ClaimValues, ClaimedRow>(
  'claim_key_package',
  { shardKey: 'did' },
  {
    columns: { cipher_suite: 'text', data: 'bytea', ref: 'bytea', last_resort: 'boolean' },
    statement: (v) => {
      const offered = offeredBy(v)
      return sql`
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
      RETURNING key_package.cipher_suite, key_package.data, key_package.ref, key_package.device_id
    ), fallback AS (
      SELECT id, cipher_suite, data, ref FROM key_package
      WHERE owner_did = ${v.did} AND last_resort AND expires_at > now()
        AND ${ofSuite(v)}
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
    (SELECT cipher_suite, data, ref, false AS last_resort FROM claimed ORDER BY device_id)
    UNION ALL (SELECT cipher_suite, data, ref, true FROM fallback)`
    },
    // The same, a device at a time, in the statement's order: by device, the packages of none last.
    body: (v) => {
      const offered = offeredBy(v)
      return sql`DECLARE
      each_device text;
      devices text[];
      picked record;
      claimed record;
      fallback record;
      suites text[] := '{}';
      datas bytea[] := '{}';
      refs bytea[] := '{}';
    BEGIN
      PERFORM 1 FROM opt_out WHERE did = ${v.did};
      IF FOUND THEN RETURN; END IF;
      SELECT coalesce(array_agg(DISTINCT device_id ORDER BY device_id), '{}') INTO devices FROM key_package
      WHERE ${offered};
      FOREACH each_device IN ARRAY devices LOOP
        SELECT id INTO picked FROM key_package
        WHERE ${offered} AND device_id IS NOT DISTINCT FROM each_device
        ORDER BY created_at, id LIMIT 1 FOR UPDATE SKIP LOCKED;
        IF FOUND THEN
          UPDATE key_package SET consumed_at = now(), consumed_by = ${v.claimedBy}
          WHERE owner_did = ${v.did} AND id = picked.id
          RETURNING cipher_suite, data, ref INTO claimed;
          suites := suites || claimed.cipher_suite;
          datas := datas || claimed.data;
          refs := refs || claimed.ref;
        END IF;
      END LOOP;
      IF cardinality(refs) > 0 THEN
        RETURN QUERY SELECT c.s, c.d, c.r, false FROM unnest(suites, datas, refs) WITH ORDINALITY AS c(s, d, r, n)
        ORDER BY c.n;
        RETURN;
      END IF;
      SELECT id, cipher_suite, data, ref INTO fallback FROM key_package
      WHERE owner_did = ${v.did} AND last_resort AND expires_at > now()
        AND ${ofSuite(v)}
      ORDER BY created_at DESC LIMIT 1;
      IF NOT FOUND THEN RETURN; END IF;
      UPDATE key_package SET handed_out = handed_out + 1 WHERE owner_did = ${v.did} AND id = fallback.id;
      INSERT INTO last_resort_handout (owner_did, ref, claimed_by) VALUES (${v.did}, fallback.ref, ${v.claimedBy})
      ON CONFLICT (owner_did, ref, claimed_by) DO UPDATE SET claimed_at = EXCLUDED.claimed_at;
      RETURN QUERY SELECT fallback.cipher_suite, fallback.data, fallback.ref, true;
    END`
    },
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
