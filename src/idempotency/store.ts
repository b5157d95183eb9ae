import { sql } from 'kysely'
import type pg from 'pg'
import type { Db } from '../db/index.js'
import { kyselyInOpenTransaction } from '../db/pinned.js'

export interface StoredResponse {
  fingerprint: Buffer
  status: number
  response: unknown
}

/** An open transaction that holds the key: the write and its response commit together. */
export interface IdempotencyClaim {
  db: Db
  commit(status: number, response: unknown): Promise<void>
  abort(): Promise<void>
}

export type ClaimResult =
  | { kind: 'stored'; stored: StoredResponse }
  | { kind: 'claimed'; claim: IdempotencyClaim }
  | { kind: 'busy' }

export interface ClaimRequest {
  scope: Buffer
  callerDid: string
  nsid: string
  /** SHA-256 of the request without its key: the same key with another request is refused. */
  fingerprint: Buffer
  /** How long to wait for a concurrent request holding the same key. */
  waitMs: number
  ttlSeconds: number
}

const LOCK_NOT_AVAILABLE = '55P03'

/** Statements sent as one simple query take literals; these are only ever hex or integers we produce. */
const hex = (buf: Buffer) => `'\\x${buf.toString('hex')}'::bytea`

/**
 * Claims a key with three database round trips for a new write (the stored
 * response is read by a statement of its own: one that started before the
 * lock was granted would not see what the previous holder committed):
 *   1. BEGIN, take a transaction-scoped advisory lock on the scope (waiting at
 *      most `waitMs` for a concurrent holder to commit or roll back), read
 *      any stored response;
 *   2. the handler's own statements, on the same transaction;
 *   3. store the response and COMMIT.
 * A stored response ends the transaction instead (two round trips).
 * Concurrent requests with one key queue on the lock, then see the first
 * one's committed response; a rolled-back first request leaves nothing, so
 * the next in line runs the write itself.
 *
 * A request whose database stops answering gets 503, and its connection is
 * closed (src/db/index.ts). Its write then either committed (the COMMIT had
 * reached the server: a retry replays the response) or never will: the
 * server rolls back when it sees the connection gone, or, if a partition
 * hides that, after idle_in_transaction_session_timeout. Until then the
 * retry waits on the lock and gets 409, never a second write.
 */
export async function claimIdempotencyKey(
  pool: pg.Pool,
  req: ClaimRequest,
): Promise<ClaimResult> {
  const client = await pool.connect()
  let open = false
  const release = (err?: Error) => {
    open = false
    client.release(err)
  }
  try {
    // The scope's first 8 bytes make the lock id; a collision only serializes.
    const lockId = req.scope.readBigInt64BE(0)
    const waitMs = Math.max(1, Math.floor(req.waitMs))
    open = true
    // The wait for a concurrent holder is bounded by lock_timeout alone: the
    // statement timeout is lifted around it (and restored, for the handler's
    // statements), and the client waits that much longer for this answer.
    const queryTimeout = pool.options.query_timeout
    const claim = {
      text: `
        BEGIN;
        SET LOCAL statement_timeout = 0;
        SELECT set_config('lock_timeout', '${waitMs}', true),
               pg_advisory_xact_lock(${lockId.toString()}),
               set_config('lock_timeout', '0', true);
        SET LOCAL statement_timeout TO DEFAULT;
        SELECT fingerprint, status, response FROM idempotency_key
          WHERE scope_hash = ${hex(req.scope)} AND expires_at > now();
      `,
      // Read by pg per query; @types/pg does not declare it.
      ...(queryTimeout ? { query_timeout: queryTimeout + waitMs } : {}),
    }
    const results = (await client.query(claim)) as unknown as pg.QueryResult[]
    const row = results[results.length - 1]?.rows[0] as StoredResponse | undefined
    if (row) {
      await client.query('ROLLBACK')
      release()
      return { kind: 'stored', stored: row }
    }
  } catch (err) {
    if (open) {
      // After a timeout the client is already ended (src/db/index.ts), and
      // this ROLLBACK fails at once.
      await client.query('ROLLBACK').then(
        () => release(),
        (rollbackErr: Error) => release(rollbackErr),
      )
    }
    if ((err as { code?: string }).code === LOCK_NOT_AVAILABLE) return { kind: 'busy' }
    throw err
  }

  const finish = async (statement: string) => {
    if (!open) return
    try {
      await client.query(statement)
      release()
    } catch (err) {
      // A connection that failed mid-transaction is not fit for reuse.
      release(err as Error)
      throw err
    }
  }
  return {
    kind: 'claimed',
    claim: {
      db: kyselyInOpenTransaction(client),
      commit: (status, response) =>
        finish(`
          INSERT INTO idempotency_key
            (scope_hash, caller_did, nsid, fingerprint, status, response, expires_at)
          VALUES (
            ${hex(req.scope)}, ${client.escapeLiteral(req.callerDid)}, ${client.escapeLiteral(req.nsid)},
            ${hex(req.fingerprint)}, ${Math.floor(status)},
            ${client.escapeLiteral(JSON.stringify(response))}::jsonb,
            now() + make_interval(secs => ${Math.floor(req.ttlSeconds)})
          )
          ON CONFLICT (scope_hash) DO UPDATE SET
            caller_did = EXCLUDED.caller_did, nsid = EXCLUDED.nsid,
            fingerprint = EXCLUDED.fingerprint, status = EXCLUDED.status,
            response = EXCLUDED.response, created_at = now(), expires_at = EXCLUDED.expires_at;
          COMMIT;
        `),
      abort: () => finish('ROLLBACK'),
    },
  }
}

/**
 * Deletes one bounded batch of expired records. SKIP LOCKED lets several
 * instances sweep at once without waiting on each other's rows. The rows are
 * deleted by the physical address (ctid) the locking read found them at,
 * which our lock keeps valid: about a quarter of the time of looking each
 * one up again by key (see BENCHMARKS.md).
 */
export async function deleteExpiredIdempotencyKeys(db: Db, batchSize: number): Promise<number> {
  const result = await sql`
    DELETE FROM idempotency_key WHERE ctid = ANY (ARRAY(
      SELECT ctid FROM idempotency_key
      WHERE expires_at <= now()
      LIMIT ${batchSize}
      FOR UPDATE SKIP LOCKED
    ))
  `.execute(db)
  return Number(result.numAffectedRows ?? 0)
}
