import type pg from 'pg'

export interface SentQuery {
  text: string
  values: unknown[]
}

/**
 * Calls `onQuery` for every statement sent on the pool's connections. One call
 * of a client's `query` is one round trip to PostgreSQL (a string of several
 * statements, as the idempotency layer sends, included). Call it before the
 * pool opens its first connection.
 */
export function observeQueries(pool: pg.Pool, onQuery: (query: SentQuery) => void): void {
  pool.on('connect', (client) => {
    const send = client.query.bind(client) as (...args: unknown[]) => unknown
    client.query = ((...args: unknown[]) => {
      const [first, second] = args
      onQuery(
        typeof first === 'string'
          ? { text: first, values: Array.isArray(second) ? second : [] }
          : {
              text: String((first as { text?: unknown }).text),
              values: (first as { values?: unknown[] }).values ?? [],
            },
      )
      return send(...args)
    }) as typeof client.query
  })
}
