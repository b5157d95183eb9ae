import { Kysely, PostgresDialect, sql } from 'kysely'
import pg from 'pg'
import type { Config } from '../config.js'
import { wrapQuery } from './connection.js'
import { DelegatedWrites } from './delegated.js'
import type { DatabaseSchema, Db } from './schema.js'

export type { Db } from './schema.js'

const INT8_OID = 20

/**
 * bigint columns (sequence numbers, epochs, counts) come back as JS numbers.
 * Our values stay far below 2^53, and numbers are what the lexicons carry.
 */
const types = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === INT8_OID && format !== 'binary'
      ? (value: string) => Number(value)
      : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
}

const BYTEA_OID = 17

/** A bytea as PostgreSQL writes it in text (in JSON, say), in either `bytea_output` format. */
export const byteaFromText = pg.types.getTypeParser(BYTEA_OID, 'text') as (text: string) => Buffer

/** Bounds on waiting for the database, in milliseconds; 0 or absent means none. */
export interface DatabaseTimeouts {
  /** PostgreSQL's `statement_timeout` on each connection. */
  statementMs?: number
  /** How long the client waits for a query's answer, or for a connection. */
  queryMs?: number
  /** PostgreSQL's `idle_in_transaction_session_timeout` on each connection. */
  idleInTransactionMs?: number
}

export interface DatabaseOptions {
  url: string
  poolSize?: number
  /** None by default: a migration may rightly run for minutes. */
  timeouts?: DatabaseTimeouts
  /** Send the statements made once (src/db/statement.ts) as named prepared statements; on by default. */
  preparedStatements?: boolean
  /** Run the delegated writes as functions sent whole to their shard's node (Citus; src/db/delegated.ts); off by default. */
  delegatedWrites?: boolean
  /** Called when a pooled connection fails outside a query (the database went away). */
  onPoolError?: (err: Error) => void
}

export interface Database {
  db: Db
  pool: pg.Pool
  /** The delegated writes' functions, when delegated writes are on. */
  delegated: DelegatedWrites | undefined
  close(): Promise<void>
}

/** The server's database settings. */
export function databaseOptions(config: Config, url: string): DatabaseOptions {
  return {
    url,
    poolSize: config.DATABASE_POOL_SIZE,
    preparedStatements: config.DATABASE_PREPARED_STATEMENTS,
    delegatedWrites: config.DATABASE_DELEGATED_WRITES,
    timeouts: {
      statementMs: config.DATABASE_STATEMENT_TIMEOUT_MS,
      queryMs: config.DATABASE_QUERY_TIMEOUT_MS,
      idleInTransactionMs: config.DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS,
    },
  }
}

/**
 * Resolves when the database answers a trivial query, rejects when it has not
 * within `timeoutMs` (a health check's own bound). The query left behind is
 * bounded by the pool's query timeout and settles on its own.
 */
export async function pingDatabase(db: Db, timeoutMs: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined
  const ping = sql`SELECT 1`.execute(db)
  const deadline = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`the database did not answer within ${timeoutMs} ms`)), timeoutMs)
  })
  // The race's loser settles later; it must not be an unhandled rejection.
  ping.catch(() => {})
  try {
    await Promise.race([ping, deadline])
  } finally {
    clearTimeout(timer)
  }
}

/**
 * Settings of the server's sessions on Citus. The SET LOCALs of the
 * idempotency claim must reach the node where its INSERT waits
 * (src/idempotency/claim.ts). A statement on every shard (the event hub's
 * reads, the push workers' claims, the sweeps) is a few index lookups per
 * shard: run over the one connection the session keeps to each node, it
 * opens none, where Citus's default opens up to 16 more per node and closes
 * them after.
 */
const CITUS_SESSION_OPTIONS = '-c citus.propagate_set_commands=local -c citus.max_adaptive_executor_pool_size=1'

export function createDatabase(opts: DatabaseOptions): Database {
  const { statementMs = 0, queryMs = 0, idleInTransactionMs = 0 } = opts.timeouts ?? {}
  const pool = new pg.Pool({
    connectionString: opts.url,
    max: opts.poolSize ?? 20,
    types,
    // pg reads 0 as "no timeout" for each of these.
    statement_timeout: statementMs,
    idle_in_transaction_session_timeout: idleInTransactionMs,
    query_timeout: queryMs,
    ...(opts.delegatedWrites ? { options: CITUS_SESSION_OPTIONS } : {}),
    // Bounds both opening a connection and waiting for a free one; without
    // configured timeouts (migrations), the 5 s it always was.
    connectionTimeoutMillis: opts.timeouts ? queryMs : 5_000,
    idleTimeoutMillis: 30_000,
    // A host that vanished (no FIN, no RST) must not leave idle connections
    // that look alive: probe after 10 s of silence, not the kernel's 2 hours.
    keepAlive: true,
    keepAliveInitialDelayMillis: 10_000,
  })
  // A connection that dies (server restart, pg_terminate_backend) emits
  // 'error'; without a listener that is an uncaught exception that kills the
  // process. The pool listens on idle clients; checked-out clients sitting
  // between two queries of a transaction need one of their own.
  const onError = (err: Error) => opts.onPoolError?.(err)
  const prepared = opts.preparedStatements ?? true
  const delegated = opts.delegatedWrites ? new DelegatedWrites(prepared, () => new pg.Client(pool.options)) : undefined
  pool.on('error', onError)
  pool.on('connect', (client) => {
    client.on('error', onError)
    wrapQuery(client, { prepared, delegated, endOnTimeout: queryMs > 0 })
  })
  const db = new Kysely<DatabaseSchema>({ dialect: new PostgresDialect({ pool }) })
  return {
    db,
    pool,
    delegated,
    // Kysely's destroy() ends the pool it was given.
    close: () => db.destroy(),
  }
}
