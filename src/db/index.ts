import { Kysely, PostgresDialect } from 'kysely'
import pg from 'pg'
import type { DatabaseSchema } from './schema.js'

export type Db = Kysely<DatabaseSchema>

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

export interface DatabaseOptions {
  url: string
  poolSize?: number
  /** Called when a pooled connection fails outside a query (the database went away). */
  onPoolError?: (err: Error) => void
}

export interface Database {
  db: Db
  pool: pg.Pool
  close(): Promise<void>
}

export function createDatabase(opts: DatabaseOptions): Database {
  const pool = new pg.Pool({
    connectionString: opts.url,
    max: opts.poolSize ?? 20,
    types,
    connectionTimeoutMillis: 5_000,
    idleTimeoutMillis: 30_000,
    // A dead server must fail queries, not hang them.
    keepAlive: true,
  })
  // A connection that dies (server restart, pg_terminate_backend) emits
  // 'error'; without a listener that is an uncaught exception that kills the
  // process. The pool listens on idle clients; checked-out clients sitting
  // between two queries of a transaction need one of their own.
  const onError = (err: Error) => opts.onPoolError?.(err)
  pool.on('error', onError)
  pool.on('connect', (client) => client.on('error', onError))
  const db = new Kysely<DatabaseSchema>({ dialect: new PostgresDialect({ pool }) })
  return {
    db,
    pool,
    // Kysely's destroy() ends the pool it was given.
    close: () => db.destroy(),
  }
}
