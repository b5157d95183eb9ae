import type { CompiledQuery, QueryResult } from 'kysely'
import type pg from 'pg'
import { registerDelegation, type Delegation } from './delegated.js'
import type { Db } from './index.js'

/**
 * The hot statements (sendMessage, getMessages, the key-package claim, the
 * idempotency lookup, getEpoch) go to PostgreSQL as named prepared
 * statements: each connection parses and plans them once, where an unnamed
 * statement is planned again on every call, which costs PostgreSQL as much as
 * running it.
 *
 * Statements are named where they are sent (`executePrepared`), and each
 * connection's `query` sends a text it knows by name as that named statement
 * (`prepareByName`). Only texts named in the code are prepared: statements
 * whose text varies (IN lists of any length) would pile up on every
 * connection.
 */
const nameOfText = new Map<string, string>()
const textOfName = new Map<string, string>()

/** Anything Kysely compiles: query builders, and `sql` templates given the database. */
export interface Statement<R> {
  compile(db: Db): CompiledQuery<R>
}

/**
 * Runs `statement` as the prepared statement `name` (on connections that
 * prepare); a write with a `delegation` runs as its shard's function on
 * connections that delegate (src/db/delegated.ts).
 */
export function executePrepared<R>(
  db: Db,
  name: string,
  statement: Statement<R>,
  delegation?: Delegation,
): Promise<QueryResult<R>> {
  const compiled = statement.compile(db)
  if (nameOfText.get(compiled.sql) !== name) {
    if (delegation) registerDelegation(compiled.sql, compiled.parameters, delegation)
    const text = textOfName.get(name)
    // One text per name: PostgreSQL would refuse to re-prepare a name on a connection.
    if (text !== undefined && text !== compiled.sql) {
      throw new Error(`prepared statement ${name} was built with two different texts`)
    }
    nameOfText.set(compiled.sql, name)
    textOfName.set(name, compiled.sql)
  }
  return db.executeQuery(compiled)
}

/** Makes `client` send the texts named by `executePrepared` as named prepared statements. */
export function prepareByName(client: pg.PoolClient): void {
  const query = client.query.bind(client) as (...args: unknown[]) => unknown
  client.query = ((...args: unknown[]) => {
    const [text, values] = args
    const name = typeof text === 'string' ? nameOfText.get(text) : undefined
    return name === undefined ? query(...args) : query({ name, text, values }, ...args.slice(2))
  }) as typeof client.query
}
