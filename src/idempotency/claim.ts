/**
 * Keyed writes recorded in a transaction (createConvo, addMembers,
 * processExternalCommit): the claim of the key opens the transaction the
 * request's services then join, and the answer is stored in the record when
 * it commits. Also the cleanup of expired records.
 *
 * The claim and its commit are each one simple-query string of several
 * statements (one round trip), which cannot carry parameters: their values
 * are literals, only ever hex or integers made here, or strings escaped by
 * the driver.
 */
import { sql } from 'kysely'
import type pg from 'pg'
import type { Db } from '../db/schema.js'
import { joinOpenTransaction } from '../db/transaction.js'
import type { KeyedWrite, StoredResponse } from './statement.js'

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

const hex = (buf: Buffer) => `'\\x${buf.toString('hex')}'::bytea`

/**
 * Claims a key for a write that runs in a transaction of its own (createConvo,
 * addMembers, processExternalCommit): one round trip (three on Citus) opens the transaction and inserts the record
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
      db: joinOpenTransaction(client),
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
