import { randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { readFile } from 'node:fs/promises'
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

/**
 * A fresh, migrated database of this test file's own, copied from the suite's
 * template; on a Citus cluster, distributed, unless `distributed` is false
 * (one PostgreSQL there too: for what is about one PostgreSQL's planner).
 */
export async function createTestDatabase({ distributed = true } = {}): Promise<TestDatabase> {
  // Loaded here, not at the top: benchmarks import this kit outside vitest.
  const { inject } = await import('vitest')
  const adminUrl = inject('pgAdminUrl')
  const name = `t_${randomBytes(6).toString('hex')}`
  await onServer(adminUrl, `CREATE DATABASE ${name} TEMPLATE ${inject('pgTemplate')}`)
  const at = (base: string) => {
    const url = new URL(base)
    url.pathname = `/${name}`
    return url.href
  }
  const workers = distributed ? citusWorkers() : []
  if (workers.length) await distribute(at(adminUrl), workers, name)
  return {
    url: at(inject('pgClientUrl')),
    directUrl: at(adminUrl),
    async drop() {
      for (const server of [adminUrl, ...workers.map((w) => `postgres://postgres@${w}/postgres`)]) {
        await onServer(server, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
      }
    },
  }
}

async function onServer(url: string, statement: string): Promise<void> {
  const client = new pg.Client(url)
  await client.connect()
  try {
    await client.query(statement)
  } finally {
    await client.end()
  }
}

/**
 * The workers of the Citus cluster the suite runs on (scripts/citus.sh test:
 * TEST_DATABASE_URL is its coordinator), as host:port; none on one PostgreSQL.
 */
const citusWorkers = (): string[] => (process.env.TEST_CITUS_WORKERS ?? '').split(',').filter(Boolean)

/**
 * Makes the test file's database a Citus cluster's, as an operator would
 * (docs/operating.md, "A Citus cluster"): the database on every worker, Citus in each, the
 * workers added, the tables distributed. Citus keeps its nodes per
 * database, and does not create databases on the workers by itself.
 */
async function distribute(url: string, workers: string[], name: string): Promise<void> {
  for (const worker of workers) {
    await onServer(`postgres://postgres@${worker}/postgres`, `CREATE DATABASE ${name}`)
    await onServer(`postgres://postgres@${worker}/${name}`, 'CREATE EXTENSION citus')
  }
  const coordinator = new URL(url)
  const nodes = workers.map((w) => {
    const [host, port] = w.split(':')
    return `SELECT citus_add_node('${host}', ${Number(port)});`
  })
  const distributed = await readFile(new URL('../../scripts/citus-distribute.sql', import.meta.url), 'utf8')
  const setUp = [
    'CREATE EXTENSION citus;',
    `SELECT citus_set_coordinator_host('${coordinator.hostname}', ${Number(coordinator.port)});`,
    ...nodes,
    distributed,
  ].join('\n')
  // Adding a worker to a database whose Citus daemon is starting on that worker sometimes
  // collides with it ("tuple concurrently updated"); the statements run as one transaction,
  // so trying again starts clean.
  for (let attempt = 1; ; attempt++) {
    try {
      return await onServer(url, setUp)
    } catch (err) {
      const collided = err instanceof Error && /tuple concurrently updated|marked as essential/.test(err.message)
      if (!collided || attempt === 3) throw err
      await sleep(500 * attempt)
    }
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

/**
 * How many backends of the current database wait for a lock. On Citus a
 * delegated write waits on the node that holds its shard: citus_stat_activity
 * sees every node. Ask outside a transaction that has read the activity
 * already (within one, it is the snapshot of its first read).
 */
export async function lockWaiters(db: QueryExecutorProvider): Promise<number> {
  const { rows: citus } = await sql<{ on: boolean }>`
    SELECT to_regclass('pg_catalog.citus_stat_activity') IS NOT NULL AS on`.execute(db)
  const activity = citus[0]?.on ? sql`citus_stat_activity` : sql`pg_stat_activity`
  const { rows } = await sql<{ n: number }>`
    SELECT count(*)::int AS n FROM ${activity} WHERE datname = current_database() AND wait_event_type = 'Lock'`.execute(
    db,
  )
  return rows[0]!.n
}
