import { sql, type RawBuilder } from 'kysely'

/** A timestamp as answers carry it. */
export const iso = (date: Date): string => date.toISOString()

/**
 * `iso` in SQL, for answers built by a statement: the same text for the same
 * timestamptz (milliseconds truncated, as node-postgres reads them into a Date).
 */
export const isoSql = (timestamp: RawBuilder<unknown>): RawBuilder<string> =>
  sql<string>`to_char(${timestamp} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`
