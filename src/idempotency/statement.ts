/**
 * Keyed writes recorded by their own statement (sendMessage,
 * publishKeyPackage): the check, the write and its record in one statement
 * (one function, on Citus), one round trip, no transaction held open. Their
 * steps (src/db/steps.ts) get two more (`recordedSteps`):
 *
 * - `idempotency_found` looks the key up; the write's first writes run only
 *   when it found nothing, and what it found comes beside the write's
 *   columns (`executeRecorded` answers with it).
 * - `idempotency_recorded` inserts the record from the written row. A plain
 *   INSERT: a concurrent request with the same key that also found nothing
 *   (its snapshot was taken before this one committed) loses on the
 *   record's primary key, and its whole statement rolls back, its write
 *   included (`isRecordTaken`).
 *
 * The record lives on the write's own shard: its shard key is the write's.
 *
 * A batch whose items carry keys of their own (publishKeyPackages) records
 * each written item under its key the same way, in the batch's one
 * statement (`itemRecordsCte`, `itemRecordedCte`; its function does the
 * same item by item: src/services/keyPackages.ts).
 */
import { sql, type RawBuilder } from 'kysely'
import { violatedUniqueKey } from '../db/errors.js'
import type { Db } from '../db/schema.js'
import { executeOnShard } from '../db/delegated.js'
import { execute, statement, type ShardStatement } from '../db/statement.js'
import type { Step, Steps } from '../db/steps.js'

/** A write that carries an idempotency key: where its record lives and what it must match. */
export interface KeyedWrite {
  /**
   * The record's shard: the conversation for conversation methods, the
   * caller for publishKeyPackage. A record is found only on its shard, so a
   * key is scoped to it.
   */
  shardKey: string
  /** sha256(caller DID, NSID, key): the raw key is never stored. */
  scope: Buffer
  callerDid: string
  nsid: string
  /** SHA-256 of the request without its key: the same key with another request is refused. */
  fingerprint: Buffer
  ttlSeconds: number
}

export interface StoredResponse {
  fingerprint: Buffer
  status: number
  /** The answer's JSON, parsed. */
  response: unknown
}

/** The write lost a race for its key: another request stored the record first (its statement rolled back whole). */
export const isRecordTaken = (err: unknown): boolean => violatedUniqueKey(err) === 'idempotency_key_pkey'

const recordLookup = statement(
  'idempotency_lookup',
  (key: { shardKey: string; scope: Buffer }) => sql<StoredResponse>`
    SELECT fingerprint, status, response FROM idempotency_key
    WHERE shard_key = ${key.shardKey} AND scope_hash = ${key.scope} AND expires_at > now()`,
)

/**
 * The live record of a keyed write, one round trip: how a keyed write that
 * failed learns whether a concurrent request with its key answered instead.
 * An expired record is no answer.
 */
export async function findRecord(
  db: Db,
  keyed: Pick<KeyedWrite, 'shardKey' | 'scope'>,
): Promise<StoredResponse | undefined> {
  return (await execute(db, recordLookup, keyed)).rows[0]
}

/**
 * The answer of a keyed write as SQL, built from the row its statement
 * returned (`row` names the step that holds it). The JSON must be the very
 * answer the handler gives from the same row. `name` tells the answers of
 * one write apart.
 */
export interface ResponseSql {
  name: string
  json(row: RawBuilder<unknown>): RawBuilder<unknown>
}

/** A keyed write whose record its own statement stores. */
export interface RecordedWrite {
  keyed: KeyedWrite
  response: ResponseSql
}

/**
 * Thrown by a keyed write's statement that found a record under its key:
 * nothing was written, and the record answers (the route replays it, or
 * refuses a different request with the same key).
 */
export class RecordFound extends Error {
  constructor(readonly stored: StoredResponse) {
    super('a record is stored under this idempotency key')
  }
}

/** A keyed write's values, as its statement's parameters (its shard key is the write's). */
export interface KeyValues {
  keyScope: Buffer
  keyCaller: string
  keyNsid: string
  keyFingerprint: Buffer
  keyTtlSeconds: number
}

const keyValues = (keyed: KeyedWrite): KeyValues => ({
  keyScope: keyed.scope,
  keyCaller: keyed.callerDid,
  keyNsid: keyed.nsid,
  keyFingerprint: keyed.fingerprint,
  keyTtlSeconds: keyed.ttlSeconds,
})

/** What a keyed write's statement returns besides the write's own columns: the record found, if any. */
interface FoundColumns {
  found_fingerprint: Buffer | null
  found_status: number | null
  found_response: unknown
  found_live: boolean | null
}

const FOUND_TYPES = {
  found_fingerprint: 'bytea',
  found_status: 'smallint',
  found_response: 'json',
  found_live: 'boolean',
} satisfies Record<keyof FoundColumns, string>

const isWrite = (step: Step) => !('select' in step)

/**
 * A write with its key: the lookup first, and the write's first writes (those
 * that wait on no other write) run only when it found no record, live or
 * expired, so that a retry whose write would now fail (the epoch moved on,
 * the sender left) still finds its answer, and writes nothing; then the
 * record, made by `response` from the row of step `written` on the write's
 * shard (`shard`: the value of its shard key); the record found comes beside
 * the result.
 */
export function recordedSteps(
  key: { shard: unknown; values: KeyValues; response: ResponseSql; written: string },
  write: Steps,
): Steps {
  const { shard, values: k, response, written } = key
  const writes = new Set(write.steps.filter(isWrite).map((step) => step.name))
  const lookup: Step = {
    name: 'idempotency_found',
    select: sql`fingerprint AS found_fingerprint, status AS found_status, response AS found_response,
                expires_at > now() AS found_live`,
    from: 'idempotency_key',
    where: sql`shard_key = ${shard} AND scope_hash = ${k.keyScope}`,
  }
  const gated = write.steps.map((step) => {
    const waits = [...(step.uses ?? []), ...(step.after ?? []), ...(step.unless ?? [])].some((s) => writes.has(s))
    return isWrite(step) && !waits ? { ...step, unless: [...(step.unless ?? []), lookup.name] } : step
  })
  const record: Step = {
    name: 'idempotency_recorded',
    insert: 'idempotency_key',
    uses: [written],
    values: {
      shard_key: shard,
      scope_hash: k.keyScope,
      caller_did: k.keyCaller,
      nsid: k.keyNsid,
      fingerprint: k.keyFingerprint,
      status: sql`200`,
      response: response.json(sql.raw(written)),
      expires_at: sql`now() + make_interval(secs => ${k.keyTtlSeconds})`,
    },
  }
  return {
    steps: [lookup, ...gated, record],
    result: { ...write.result, beside: { step: lookup.name, columns: FOUND_TYPES } },
  }
}

const expiredRecordDelete = statement(
  'idempotency_expired_delete',
  (key: { shardKey: string; scope: Buffer }) => sql`
    DELETE FROM idempotency_key WHERE shard_key = ${key.shardKey} AND scope_hash = ${key.scope} AND expires_at <= now()`,
)

/**
 * Runs a write made with `recordedSteps` with `values` (and the key's,
 * for a keyed write): the write's rows, or, when a record was found under
 * the key, RecordFound (nothing was written). An expired record still holds
 * its primary key until the cleanup worker deletes it: it is deleted here
 * and the statement runs again (two more round trips, once a day at most per
 * key), so the key starts over.
 */
export async function executeRecorded<V extends object, R>(
  db: Db,
  write: ShardStatement<V & KeyValues, R>,
  values: V,
  record: RecordedWrite | undefined,
): Promise<R[]> {
  // The record lives on the write's shard (its shard key is the request's: src/xrpc/idempotency.ts).
  if (record && record.keyed.shardKey !== (values as Record<string, unknown>)[write.shard.shardKey]) {
    throw new Error(`the key of ${write.name} is not on its shard`)
  }
  // A statement made without a key has no parameters for one.
  const bound = (record ? { ...values, ...keyValues(record.keyed) } : values) as V & KeyValues
  for (;;) {
    const { rows } = await executeOnShard(db, write, bound)
    const found = rows[0] as (R & Partial<FoundColumns>) | undefined
    if (!record || found?.found_status == null) return rows
    if (found.found_live) {
      throw new RecordFound({
        fingerprint: found.found_fingerprint as Buffer,
        status: found.found_status,
        response: found.found_response,
      })
    }
    await execute(db, expiredRecordDelete, record.keyed)
  }
}

/** The values of a batch's per-item keys: where their records live and for how long. */
export interface ItemKeyValues {
  keyShard: string
  keyCaller: string
  keyNsid: string
  keyTtlSeconds: number
}

/**
 * `item_records (n, fingerprint)`: the live records under the keys of a
 * batch's items, from its CTE `items (n, key_scope)` (a NULL scope: no key).
 */
export const itemRecordsCte = (v: ItemKeyValues): RawBuilder<unknown> => sql`
  item_records AS (
    SELECT item.n, k.fingerprint FROM items item
    JOIN idempotency_key k ON k.shard_key = ${v.keyShard} AND k.scope_hash = item.key_scope AND k.expires_at > now()
  )`

/**
 * Records each keyed item of the CTE `written (key_scope, key_fingerprint)`
 * with `response` (built from its row, `written`), in the statement that
 * wrote it. An item found under its key was not written; two requests
 * writing the same item at once store it once (its own unique keys), so
 * only an expired record can stand in the way, and it is taken over.
 */
export const itemRecordedCte = (v: ItemKeyValues, response: RawBuilder<unknown>): RawBuilder<unknown> => sql`
  item_recorded AS (
    INSERT INTO idempotency_key (shard_key, scope_hash, caller_did, nsid, fingerprint, status, response, expires_at)
    SELECT ${v.keyShard}, written.key_scope, ${v.keyCaller}, ${v.keyNsid}, written.key_fingerprint, 200,
           ${response}, now() + make_interval(secs => ${v.keyTtlSeconds})
    FROM written WHERE written.key_scope IS NOT NULL
    ON CONFLICT (shard_key, scope_hash) DO UPDATE SET
      caller_did = EXCLUDED.caller_did, nsid = EXCLUDED.nsid, fingerprint = EXCLUDED.fingerprint,
      status = EXCLUDED.status, response = EXCLUDED.response,
      created_at = EXCLUDED.created_at, expires_at = EXCLUDED.expires_at
    -- The clock as the insert read it (its created_at): Citus takes none here.
    WHERE idempotency_key.expires_at <= EXCLUDED.created_at
  )`
