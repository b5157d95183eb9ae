import { sql, type RawBuilder } from 'kysely'
import type pg from 'pg'
import type { Db } from '../db/index.js'
import type { Delegation } from '../db/delegated.js'
import { violatedUniqueKey } from '../db/errors.js'
import { kyselyInOpenTransaction } from '../db/pinned.js'
import { executePrepared } from '../db/prepared.js'

/** A write that carries an idempotency key: where its record lives and what it must match. */
export interface KeyedWrite {
  /**
   * The record's shard (issue 19): the conversation for conversation
   * methods, the caller for publishKeyPackage. A record is found only on
   * its shard, so a key is scoped to it.
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

/**
 * The live record of a keyed write, one round trip: how a keyed write that
 * failed learns whether a concurrent request with its key answered instead
 * (see the plugin). An expired record is no answer.
 */
export async function findRecord(
  db: Db,
  keyed: Pick<KeyedWrite, 'shardKey' | 'scope'>,
): Promise<StoredResponse | undefined> {
  const { rows } = await executePrepared(
    db,
    'idempotency_lookup',
    sql<StoredResponse>`
      SELECT fingerprint, status, response FROM idempotency_key
      WHERE shard_key = ${keyed.shardKey} AND scope_hash = ${keyed.scope} AND expires_at > now()`,
  )
  return rows[0]
}

/**
 * The answer of a keyed write as SQL, built from the row its statement
 * returned (`row` names the CTE that holds it). The JSON must be the very
 * answer the handler gives from the same row.
 */
export type ResponseSql = (row: RawBuilder<unknown>) => RawBuilder<unknown>

/** A keyed write whose record its own statement stores. */
export interface RecordedWrite {
  keyed: KeyedWrite
  response: ResponseSql
}

/**
 * Thrown by a keyed write's statement that found a record under its key:
 * nothing was written, and the record answers (the plugin replays it, or
 * refuses a different request with the same key).
 */
export class RecordFound extends Error {
  constructor(readonly stored: StoredResponse) {
    super('a record is stored under this idempotency key')
  }
}

/** What a keyed write's statement returns besides the write's own columns: the record found, if any. */
interface FoundColumns {
  found_fingerprint: Buffer | null
  found_status: number | null
  found_response: unknown
  found_live: boolean | null
}

/** FoundColumns' types, for a delegated write's function (src/db/delegated.ts). */
const FOUND_COLUMNS = 'found_fingerprint bytea, found_status smallint, found_response json, found_live boolean'

/**
 * The condition a keyed write's statement puts on its first write (nothing
 * without a key): no record under the key, live or expired. So a retry
 * whose write would now fail (the epoch moved on, the sender left) still
 * finds its answer, and writes nothing.
 */
export const unrecorded = (record: RecordedWrite | undefined): RawBuilder<unknown> =>
  record ? sql` AND NOT EXISTS (SELECT FROM idempotency_found)` : sql``

/** A write statement's parts: its CTEs, the CTE holding the written row, and its final SELECT. */
export interface WriteStatement<R> {
  ctes: RawBuilder<unknown>
  /** The CTE whose rows (one per write) the answer is built from. */
  written: string
  select: RawBuilder<R>
}

/**
 * A write as one statement; with a key, the check, the write and its record
 * all in it (one round trip, no transaction held open):
 *
 * - `idempotency_found` looks the key up; the write is gated on finding
 *   nothing (see `unrecorded`), and what it found is returned beside the
 *   write's columns (`executeRecorded` answers with it).
 * - `idempotency_recorded` inserts the record from the written row, in the
 *   same statement. A plain INSERT: a concurrent request with the same key
 *   that also found nothing (its snapshot was taken before this one
 *   committed) loses on the record's primary key, and its whole statement
 *   rolls back, its write included (see `isRecordTaken`).
 */
export function writeStatement<R>(record: RecordedWrite | undefined, write: WriteStatement<R>): RawBuilder<R> {
  if (!record) return sql<R>`WITH ${write.ctes} ${write.select}`
  const { keyed, response } = record
  const written = sql.table(write.written)
  return sql<R>`
    WITH idempotency_found AS (
      SELECT fingerprint AS found_fingerprint, status AS found_status, response AS found_response,
             expires_at > now() AS found_live
      FROM idempotency_key WHERE shard_key = ${keyed.shardKey} AND scope_hash = ${keyed.scope}
    ), ${write.ctes}, idempotency_recorded AS (
      INSERT INTO idempotency_key (shard_key, scope_hash, caller_did, nsid, fingerprint, status, response, expires_at)
      SELECT ${keyed.shardKey}, ${keyed.scope}, ${keyed.callerDid}, ${keyed.nsid}, ${keyed.fingerprint}, 200,
             ${response(written)}, now() + make_interval(secs => ${keyed.ttlSeconds})
      FROM ${written}
    ), written AS (${write.select})
    SELECT * FROM written FULL JOIN idempotency_found ON true`
}

/**
 * Runs a statement built by `writeStatement` as the prepared statement
 * `name` (delegated to its shard's node on Citus: `delegation` names the
 * write's shard key and result columns): the write's rows, or, when a record
 * was found under the key, RecordFound (nothing was written). An expired
 * record still holds its primary key until the cleanup worker deletes it: it
 * is deleted here and the statement runs again (two more round trips, once a
 * day at most per key), so the key starts over.
 */
export async function executeRecorded<R>(
  db: Db,
  name: string,
  statement: RawBuilder<R>,
  record: RecordedWrite | undefined,
  delegation: Delegation,
): Promise<R[]> {
  const delegated = record ? { ...delegation, columns: `${delegation.columns}, ${FOUND_COLUMNS}` } : delegation
  for (;;) {
    const { rows } = await executePrepared(db, name, statement as RawBuilder<R & Partial<FoundColumns>>, delegated)
    const found = rows[0]
    if (!record || found?.found_status == null) return rows
    if (found.found_live) {
      throw new RecordFound({
        fingerprint: found.found_fingerprint as Buffer,
        status: found.found_status,
        response: found.found_response,
      })
    }
    await sql`
      DELETE FROM idempotency_key
      WHERE shard_key = ${record.keyed.shardKey} AND scope_hash = ${record.keyed.scope} AND expires_at <= now()`.execute(
      db,
    )
  }
}

/** A transaction that holds a keyed write's claim: the write, its answer and the record commit together. */
export interface KeyedTransaction {
  db: Db
  /** Runs `fn` once the transaction committed. */
  afterCommit(fn: () => void): void
  /** Stores the answer in the record, commits, then runs the after-commit callbacks. */
  commit(status: number, responseJson: string): Promise<void>
  /** Rolls back (the claim goes with it); nothing once committed or aborted. */
  abort(): Promise<void>
}

export type ClaimResult =
  { kind: 'stored'; stored: StoredResponse } | { kind: 'claimed'; transaction: KeyedTransaction } | { kind: 'busy' }

const LOCK_NOT_AVAILABLE = '55P03'

/** Statements sent as one simple query take literals; these are only ever hex or integers we produce. */
const hex = (buf: Buffer) => `'\\x${buf.toString('hex')}'::bytea`

/**
 * Claims a key for a write that runs in a transaction of its own (createConvo,
 * addMembers): one round trip (three on Citus) opens the transaction and inserts the record
 * with status 0 (a speculative insert), or finds the record another request
 * committed. A concurrent request holding the same key (its insert not yet
 * committed) is waited for at most `waitMs` (`lock_timeout`), then the answer
 * is `busy`; a rolled-back holder leaves nothing, so the next in line claims.
 * An expired record is taken over. Then the handler's statements run on the
 * transaction, and `commit` stores the answer and commits (one round trip).
 *
 * A request whose database stops answering gets 503, and its connection is
 * closed (src/db/index.ts). Its write then either committed (the COMMIT had
 * reached the server: a retry replays the answer) or never will: the server
 * rolls back when it sees the connection gone, or, if a partition hides
 * that, after idle_in_transaction_session_timeout. Until then the retry
 * waits on the claim and gets 409, never a second write.
 */
export async function claimKey(
  pool: pg.Pool,
  keyed: KeyedWrite,
  waitMs: number,
  opts: { distributed: boolean } = { distributed: false },
): Promise<ClaimResult> {
  const client = await pool.connect()
  let open = true
  const release = (err?: Error) => {
    open = false
    client.release(err)
  }
  const key = `shard_key = ${client.escapeLiteral(keyed.shardKey)} AND scope_hash = ${hex(keyed.scope)}`
  try {
    const wait = Math.max(1, Math.floor(waitMs))
    // The wait for a concurrent holder is bounded by lock_timeout alone: the
    // statement timeout is lifted around it (and restored, for the handler's
    // statements), and the client waits that much longer for this answer.
    const lift = `SET LOCAL statement_timeout = 0; SET LOCAL lock_timeout = ${wait};`
    const insert = `
      INSERT INTO idempotency_key (shard_key, scope_hash, caller_did, nsid, fingerprint, status, response, expires_at)
        VALUES (${client.escapeLiteral(keyed.shardKey)}, ${hex(keyed.scope)}, ${client.escapeLiteral(keyed.callerDid)},
                ${client.escapeLiteral(keyed.nsid)}, ${hex(keyed.fingerprint)}, 0, 'null',
                now() + make_interval(secs => ${Math.floor(keyed.ttlSeconds)}))
        ON CONFLICT (shard_key, scope_hash) DO UPDATE SET
          caller_did = EXCLUDED.caller_did, nsid = EXCLUDED.nsid, fingerprint = EXCLUDED.fingerprint,
          status = EXCLUDED.status, response = EXCLUDED.response,
          created_at = EXCLUDED.created_at, expires_at = EXCLUDED.expires_at
        WHERE idempotency_key.expires_at <= EXCLUDED.created_at
        RETURNING status;`
    const restore = 'SET LOCAL lock_timeout TO DEFAULT; SET LOCAL statement_timeout TO DEFAULT;'
    const read = `SELECT fingerprint, status, response FROM idempotency_key WHERE ${key};`
    // On Citus the INSERT waits on the node that holds the record, which
    // hears of a SET LOCAL when Citus propagates it (the connections of a
    // distributed database ask it to: src/db/index.ts), and Citus then sends
    // that node the whole string the SET came in: so there the SETs go in
    // strings of their own, and the claim takes three round trips (four when
    // a record is found).
    const strings = opts.distributed
      ? [`BEGIN; ${lift}`, insert, restore, read]
      : [`BEGIN; ${lift} ${insert} ${restore} ${read}`]
    const queryTimeout = pool.options.query_timeout
    const results: pg.QueryResult[] = []
    const inserted = () => results.find((r) => r.command === 'INSERT')?.rowCount
    for (const text of strings) {
      // A record was inserted: there is none to read.
      if (text === read && inserted() === 1) continue
      // Read by pg per query; @types/pg does not declare it.
      const sent = { text, ...(queryTimeout ? { query_timeout: queryTimeout + wait } : {}) }
      results.push(...[(await client.query(sent)) as pg.QueryResult | pg.QueryResult[]].flat())
    }
    // The INSERT returned nothing: a live record was there (committed, or waited for until it was).
    if (inserted() === 0) {
      const stored = results[results.length - 1]?.rows[0] as StoredResponse
      await client.query('ROLLBACK')
      release()
      return { kind: 'stored', stored }
    }
  } catch (err) {
    // After a timeout the client is already ended (src/db/index.ts), and
    // this ROLLBACK fails at once.
    await client.query('ROLLBACK').then(
      () => release(),
      (rollbackErr: Error) => release(rollbackErr),
    )
    if ((err as { code?: string }).code === LOCK_NOT_AVAILABLE) return { kind: 'busy' }
    throw err
  }

  const finish = async (statement: string) => {
    if (!open) return false
    try {
      await client.query(statement)
      release()
      return true
    } catch (err) {
      // A connection that failed mid-transaction is not fit for reuse.
      release(err as Error)
      throw err
    }
  }
  const committed: Array<() => void> = []
  return {
    kind: 'claimed',
    transaction: {
      db: kyselyInOpenTransaction(client),
      afterCommit: (fn) => void committed.push(fn),
      async commit(status, responseJson) {
        const done = await finish(`
          UPDATE idempotency_key SET status = ${Math.floor(status)}, response = ${client.escapeLiteral(responseJson)}::json
            WHERE ${key};
          COMMIT;
        `)
        if (done) for (const fn of committed) fn()
      },
      abort: async () => void (await finish('ROLLBACK')),
    },
  }
}

/**
 * Deletes one bounded batch of expired records, by key (no row locks, no
 * physical addresses: both are local to one node of a distributed table).
 * A record taken over meanwhile (claimKey) is not expired any more when the
 * delete gets to it, and stays; instances sweeping at once wait for a row,
 * then pass it by.
 */
export async function deleteExpiredIdempotencyKeys(db: Db, batchSize: number): Promise<number> {
  const result = await sql`
    DELETE FROM idempotency_key
    WHERE expires_at <= now() AND (shard_key, scope_hash) IN (
      SELECT shard_key, scope_hash FROM idempotency_key WHERE expires_at <= now() LIMIT ${batchSize}
    )
  `.execute(db)
  return Number(result.numAffectedRows ?? 0)
}
