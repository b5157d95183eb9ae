/**
 * What every pooled connection does with a query, in one wrapper, in order:
 *
 * 1. a statement made once (src/db/statement.ts) is found by its text;
 * 2. a delegated write is sent as the call of its function (Citus,
 *    src/db/delegated.ts), or
 * 3. any made statement as its named prepared statement;
 * 4. a query the database did not answer in time ends the connection.
 *
 * pg's query_timeout only stops waiting: the query stays in flight on the
 * connection, and the next query on it (a ROLLBACK, or the next request's)
 * would queue behind it for as long as the server stays silent. So a client
 * whose query timed out is ended at once (pg destroys the socket of a client
 * ending mid-query): whoever holds it fails fast, and the pool discards it on
 * release instead of handing it out again. The server side then rolls back,
 * or commits if the COMMIT had already reached it; keyed writes are safe
 * either way (src/idempotency/).
 */
import type pg from 'pg'
import type { DelegatedWrites } from './delegated.js'
import { statementOf, type ShardStatement } from './statement.js'

/** What pg raises when `query_timeout` passes without an answer. */
export const isQueryTimeout = (err: unknown): boolean => err instanceof Error && err.message === 'Query read timeout'

export interface ConnectionSteps {
  /** Send made statements as named prepared statements. */
  prepared: boolean
  /** Send delegated writes as their functions' calls. */
  delegated: DelegatedWrites | undefined
  /** End the connection when a query times out. */
  endOnTimeout: boolean
}

type Query = (...args: unknown[]) => unknown

export function wrapQuery(client: pg.PoolClient, steps: ConnectionSteps): void {
  const query = client.query.bind(client) as Query
  const send: Query = (...args) => {
    const [text, values] = args
    const made = typeof text === 'string' ? statementOf(text) : undefined
    if (!made) return query(...args)
    if (made.shard && steps.delegated) {
      return steps.delegated.send(
        (sent, sentValues) => query(sent, sentValues) as Promise<pg.QueryResult>,
        made as ShardStatement,
        values as unknown[],
      )
    }
    return steps.prepared ? query({ name: made.name, text, values }) : query(text, values)
  }
  client.query = ((...args: unknown[]) => {
    const result = send(...args)
    if (steps.endOnTimeout && result instanceof Promise) {
      result.catch((err: unknown) => {
        if (isQueryTimeout(err)) void client.end()
      })
    }
    return result
  }) as typeof client.query
}
