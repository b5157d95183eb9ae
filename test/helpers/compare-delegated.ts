import { isDeepStrictEqual } from 'node:util'
import pg from 'pg'
import { statementOf } from '../../src/db/statement.js'

/** One delegated write run both ways: its name, and how the two differed, if they did. */
export interface ComparedWrite {
  write: string
  difference?: string
}

type Query = (text: string, values?: unknown[]) => Promise<pg.QueryResult>

const SAVEPOINT = 'catbird_compare'
const NO_TRANSACTION = '25P01'

/** Every table's rows, as text, one row per table: what a write changed is where two runs differ. */
const DUMP = `
  SELECT string_agg(
           format('SELECT %L AS name, (SELECT coalesce(json_agg(x ORDER BY x::text), ''[]'') FROM %I x)::text AS rows',
                  tablename, tablename),
           ' UNION ALL ' ORDER BY tablename) AS dump
  FROM pg_tables WHERE schemaname = 'public' AND tablename NOT LIKE 'kysely%'`

const SEQUENCES = `SELECT format('%I.%I', schemaname, sequencename) AS name, last_value, start_value
  FROM pg_sequences WHERE schemaname = 'public'`
const RESTORE = `SELECT setval(s.name::regclass, coalesce(s.last_value, s.start_value), s.last_value IS NOT NULL)
  FROM json_to_recordset($1::json) AS s(name text, last_value bigint, start_value bigint)`

type Outcome = { rows: unknown[] } | { error: string }
const outcome = (run: Promise<pg.QueryResult>): Promise<Outcome> =>
  run.then(
    (result) => ({ rows: result.rows }),
    (err: { code?: string; message?: string }) => ({ error: `${err.code} ${err.message}` }),
  )

/**
 * Makes `client` (a pooled connection of a server with delegated writes on,
 * on plain PostgreSQL) run each delegated write twice, in one transaction
 * (the caller's, or one of its own): first its statement of CTEs, then,
 * after rolling that back to a savepoint and setting the sequences back, its
 * function, which stays. Both see the same clock and draw the same ids, so
 * their answers, errors and every table's rows after them must be equal;
 * each run is recorded in `compared`. Install it from the pool's `connect`
 * event, after the server's own (it wraps the server's query).
 */
export function compareDelegatedWrites(client: pg.PoolClient, compared: ComparedWrite[]): void {
  // The driver's own query, beneath the server's wrapper.
  const driverQuery = pg.Client.prototype.query as unknown as (
    this: pg.Client,
    ...args: unknown[]
  ) => Promise<pg.QueryResult>
  const raw: Query = (text, values) => driverQuery.call(client, text, values)
  const sent = client.query.bind(client) as Query
  let dump: string | undefined
  const tables = async () => {
    dump ??= (await raw(DUMP)).rows[0].dump as string
    return (await raw(dump)).rows as Array<{ name: string; rows: string }>
  }
  const compare = async (write: string, text: string, values: unknown[] | undefined) => {
    const own = await raw(`SAVEPOINT ${SAVEPOINT}`).then(
      () => false,
      async (err: { code?: string }) => {
        if (err.code !== NO_TRANSACTION) throw err
        await raw(`BEGIN; SAVEPOINT ${SAVEPOINT}`)
        return true
      },
    )
    const sequences = (await raw(SEQUENCES)).rows
    const statement = await outcome(raw(text, values))
    const statementTables = 'rows' in statement ? await tables() : []
    await raw(`ROLLBACK TO SAVEPOINT ${SAVEPOINT}`)
    await raw(RESTORE, [JSON.stringify(sequences)])
    let result: pg.QueryResult | undefined
    let failure: unknown
    try {
      result = await sent(text, values)
    } catch (err) {
      failure = err
    }
    const fn: Outcome = result ? { rows: result.rows } : await outcome(Promise.reject(failure))
    const fnTables = result ? await tables() : []
    const changed = fnTables.find((table, i) => table.rows !== statementTables[i]?.rows)
    const difference = !isDeepStrictEqual(statement, fn)
      ? `statement: ${JSON.stringify(statement)}\nfunction: ${JSON.stringify(fn)}`
      : changed
        ? `table ${changed.name} after the statement: ${statementTables.find((t) => t.name === changed.name)?.rows}\nafter the function: ${changed.rows}`
        : undefined
    compared.push({ write, ...(difference ? { difference } : {}) })
    if (!result) {
      if (own) await raw('ROLLBACK')
      throw failure
    }
    await raw(own ? 'COMMIT' : `RELEASE SAVEPOINT ${SAVEPOINT}`)
    return result
  }
  client.query = ((...args: unknown[]) => {
    const [text, values] = args
    const made = typeof text === 'string' ? statementOf(text) : undefined
    if (!made?.shard) return (sent as (...a: unknown[]) => unknown)(...args)
    return compare(made.name, text as string, values as unknown[] | undefined)
  }) as typeof client.query
}
