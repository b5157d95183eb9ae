import type { Db } from './index.js'

/**
 * Runs `fn` atomically: in a new transaction, or inside the one `db` already
 * is (a Kysely Transaction, or the idempotency layer's open transaction).
 */
export function transact<T>(db: Db, fn: (trx: Db) => Promise<T>): Promise<T> {
  return db.isTransaction ? fn(db) : db.transaction().execute(fn)
}
