import { Kysely, PostgresDialect, PostgresDriver, type PostgresPool, type PostgresPoolClient } from 'kysely'
import type pg from 'pg'
import type { Db } from './index.js'
import type { DatabaseSchema } from './schema.js'

/** Transaction control belongs to whoever opened the transaction on the client. */
class PinnedTransactionDriver extends PostgresDriver {
  override async beginTransaction(): Promise<void> {}
  override async commitTransaction(): Promise<void> {}
  override async rollbackTransaction(): Promise<void> {}
}

class PinnedDialect extends PostgresDialect {
  constructor(private readonly pool: PostgresPool) {
    super({ pool })
  }

  override createDriver(): PostgresDriver {
    return new PinnedTransactionDriver({ pool: this.pool })
  }
}

/**
 * A Kysely instance running every query on one client that is already inside
 * a transaction someone else owns. Services call `db.transaction()` as usual;
 * here it joins the open transaction instead of starting another, so a
 * service's writes and the owner's own statements commit or fail together.
 */
export function kyselyInOpenTransaction(client: pg.PoolClient): Db {
  // Pooled clients live long and are reused: so is the instance built on each.
  let db = onClient.get(client)
  if (!db) {
    db = buildOn(client)
    onClient.set(client, db)
  }
  return db
}

const onClient = new WeakMap<pg.PoolClient, Db>()

function buildOn(client: pg.PoolClient): Db {
  const pinned: PostgresPoolClient = {
    query: client.query.bind(client) as PostgresPoolClient['query'],
    // Returning the client to the pool is the owner's job too.
    release() {},
  }
  const pool: PostgresPool = { connect: async () => pinned, end: async () => {} }
  return new Kysely<DatabaseSchema>({ dialect: new PinnedDialect(pool) })
}
