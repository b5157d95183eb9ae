import { sql, type RawBuilder } from 'kysely'
import type { Db } from '../db/index.js'

/**
 * Runs `fn` atomically: in a new transaction, or inside the one `db` already
 * is (a Kysely Transaction, or the idempotency layer's open transaction).
 */
export function transact<T>(db: Db, fn: (trx: Db) => Promise<T>): Promise<T> {
  return db.isTransaction ? fn(db) : db.transaction().execute(fn)
}

export const iso = (date: Date): string => date.toISOString()

/**
 * `iso` in SQL, for answers built by a statement: the same text for the same
 * timestamptz (milliseconds truncated, as node-postgres reads them into a Date).
 */
export const isoSql = (timestamp: RawBuilder<unknown>): RawBuilder<string> =>
  sql<string>`to_char(${timestamp} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`

/**
 * Binary fields the lexicons type as `string` (key packages, Welcomes,
 * commits) are base64. Both alphabets and optional padding are accepted;
 * anything else is refused rather than half-decoded.
 */
export function decodeBase64(value: string): Uint8Array | undefined {
  const trimmed = value.replace(/=+$/, '')
  if (trimmed.length === 0 || trimmed.length % 4 === 1 || !/^[A-Za-z0-9+/_-]+$/.test(trimmed)) {
    return undefined
  }
  return new Uint8Array(Buffer.from(trimmed, 'base64'))
}

/** Standard padded base64, what the Catbird clients decode. */
export const encodeBase64 = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64')
