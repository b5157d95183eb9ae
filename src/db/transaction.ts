/**
 * The transaction contract. A transaction has one owner, who begins and ends
 * it: a service (`transact`), or the idempotency claim of a keyed write,
 * whose transaction the request's services join (`joinOpenTransaction`).
 * Either way the services see a Db that is in a transaction, and a statement
 * that locks rows for the statements after it asserts so.
 */
import { Kysely, PostgresDialect, PostgresDriver, type PostgresPool, type PostgresPoolClient } from 'kysely'
import type pg from 'pg'
import type { DatabaseSchema, Db } from './schema.js'

/** Runs `fn` atomically: in a new transaction, or inside the one `db` is in already. */
export function transact<T>(db: Db, fn: (trx: Db) => Promise<T>): Promise<T> {
  return db.isTransaction ? fn(db) : db.transaction().execute(fn)
}

/** Throws unless `db` is in a transaction: what a row lock held for later statements needs. */
export function assertTransaction(db: Db): void {
  if (!db.isTransaction) throw new Error('this statement must run inside a transaction')
}

/** Transaction control belongs to whoever opened the transaction on the client. */
class JoinedTransactionDriver extends PostgresDriver {
  override async beginTransaction(): Promise<void> {}
  override async commitTransaction(): Promise<void> {}
  override async rollbackTransaction(): Promise<void> {}
}

class JoinedTransactionDialect extends PostgresDialect {
  constructor(private readonly pool: PostgresPool) {
    super({ pool })
  }

  override createDriver(): PostgresDriver {
    return new JoinedTransactionDriver({ pool: this.pool })
  }
}

/** A Kysely instance inside a transaction it does not own. */
class JoinedTransaction extends Kysely<DatabaseSchema> {
  override get isTransaction(): boolean {
    return true
  }
}

const joined = new WeakMap<pg.PoolClient, Db>()

/**
 * A Db that runs every query on `client`, which is inside a transaction its
 * owner opened: a service's writes and the owner's own statements commit or
 * fail together. Pooled clients live long and are reused: so is the
 * instance built on each.
 */
export function joinOpenTransaction(client: pg.PoolClient): Db {
  let db = joined.get(client)
  if (!db) {
    const pinned: PostgresPoolClient = {
      query: client.query.bind(client) as PostgresPoolClient['query'],
      // Returning the client to the pool is the owner's job too.
      release() {},
    }
    const pool: PostgresPool = { connect: async () => pinned, end: async () => {} }
    db = new JoinedTransaction({ dialect: new JoinedTransactionDialect(pool) })
    joined.set(client, db)
  }
  return db
}
