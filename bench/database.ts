import { randomBytes } from 'node:crypto'
import path from 'node:path'
import pg from 'pg'
import type { Dist } from './dist.js'

export interface Cluster {
  adminUrl: string
  description: string
  stop(): Promise<void>
}

/** An embedded PostgreSQL with default (durable) settings, its data in `dir`. */
export async function startEmbeddedCluster(dist: Dist, dir: string): Promise<Cluster> {
  const embedded = await dist.startEmbeddedPostgres({
    dataDir: path.join(dir, 'postgres'),
    // Below Linux's ephemeral ports (32768 up): thousands of the bench's closed sockets wait
    // there in TIME_WAIT after a fan-out, and PostgreSQL could not bind one of them.
    port: 20_000 + Math.floor(Math.random() * 12_000),
  })
  return {
    adminUrl: embedded.url,
    description: 'embedded, fresh cluster in a temporary directory',
    stop: embedded.stop,
  }
}

/** DATABASE_URL's server, or an embedded one in `dir`. */
export async function startCluster(dist: Dist, dir: string): Promise<Cluster> {
  if (process.env.DATABASE_URL) {
    return { adminUrl: process.env.DATABASE_URL, description: 'the server at DATABASE_URL', stop: async () => {} }
  }
  return startEmbeddedCluster(dist, dir)
}

/** A new database on the cluster, migrated to the latest schema: `close` closes its pool, `drop` that and the database. */
export async function createBenchDatabase(dist: Dist, adminUrl: string, role: string) {
  const name = `catbird_bench_${role}_${randomBytes(4).toString('hex')}`
  const admin = async (statement: string) => {
    const client = new pg.Client(adminUrl)
    await client.connect()
    await client.query(statement).finally(() => client.end())
  }
  await admin(`CREATE DATABASE ${name}`)
  const url = new URL(adminUrl)
  url.pathname = `/${name}`
  const database = dist.createDatabase({ url: url.href, poolSize: 4 })
  await dist.migrateToLatest(database.db)
  const drop = async () => {
    await database.close()
    await admin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
  }
  return { url: url.href, pool: database.pool, db: database.db, close: database.close, drop }
}

export type BenchDatabase = Awaited<ReturnType<typeof createBenchDatabase>>

/** CHECKPOINT needs a superuser or pg_checkpoint; without, the next automatic one comes later. */
export const checkpoint = (pool: pg.Pool) => pool.query('CHECKPOINT').catch(() => {})
