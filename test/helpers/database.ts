import { randomBytes } from 'node:crypto'
import { Kysely, PostgresDialect, sql, type QueryExecutorProvider, type RawBuilder } from 'kysely'
import pg from 'pg'
import type { DatabaseSchema } from '../../src/db/schema.js'

export interface TestDatabase {
  /** As the server reaches it (through PgBouncer when the suite runs behind it). */
  url: string
  /** Straight to PostgreSQL: what LISTEN needs behind a pooler in transaction mode. */
  directUrl: string
  drop(): Promise<void>
}

/** A fresh, migrated database of this test file's own, copied from the suite's template. */
export async function createTestDatabase(): Promise<TestDatabase> {
  // Loaded here, not at the top: benchmarks import this kit outside vitest.
  const { inject } = await import('vitest')
  const adminUrl = inject('pgAdminUrl')
  const name = `t_${randomBytes(6).toString('hex')}`
  const admin = new pg.Client(adminUrl)
  await admin.connect()
  try {
    await admin.query(`CREATE DATABASE ${name} TEMPLATE ${inject('pgTemplate')}`)
  } finally {
    await admin.end()
  }
  const at = (base: string) => {
    const url = new URL(base)
    url.pathname = `/${name}`
    return url.href
  }
  return {
    url: at(inject('pgClientUrl')),
    directUrl: at(adminUrl),
    async drop() {
      const client = new pg.Client(adminUrl)
      await client.connect()
      try {
        await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
      } finally {
        await client.end()
      }
    },
  }
}

/** A Kysely of the test's own on `url`, beside the server's pool: to look at or hold rows as another client would. */
export const openKysely = (url: string, max = 2): Kysely<DatabaseSchema> =>
  new Kysely({ dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: url, max }) }) })

/** How many rows of `table` there are (that match `where`). */
export async function countRows(
  db: QueryExecutorProvider,
  table: string,
  where?: RawBuilder<unknown>,
): Promise<number> {
  const filter = where ? sql` WHERE ${where}` : sql``
  const { rows } = await sql<{ n: number }>`SELECT count(*)::int AS n FROM ${sql.table(table)}${filter}`.execute(db)
  return rows[0]!.n
}
