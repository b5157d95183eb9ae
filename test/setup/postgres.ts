import { existsSync } from 'node:fs'
import { chmod, mkdtemp, rm } from 'node:fs/promises'
import { request } from 'node:http'
import { tmpdir } from 'node:os'
import path from 'node:path'
import pg from 'pg'
import type { TestProject } from 'vitest/node'
import { startEmbeddedPostgres } from '../../src/db/embedded.js'
import { migrateToLatest } from '../../src/db/migrator.js'
import { openKysely } from '../helpers/database.js'
import { findPgBouncer, NO_PGBOUNCER, startPgBouncer } from '../helpers/pgbouncer.js'

declare module 'vitest' {
  export interface ProvidedContext {
    /** Admin connection string of the test cluster. */
    pgAdminUrl: string
    /** Database, already migrated, that each test file copies. */
    pgTemplate: string
    /** The cluster as the server reaches it: pgAdminUrl, or PgBouncer in front of it (TEST_PGBOUNCER=1). */
    pgClientUrl: string
  }
}

const TEMPLATE = 'catbird_test_template'

/** Answers quickly whether a Docker engine listens on the usual socket. */
async function dockerEngineAnswers(): Promise<boolean> {
  const socketPath = process.env.DOCKER_HOST?.startsWith('unix://')
    ? process.env.DOCKER_HOST.slice('unix://'.length)
    : '/var/run/docker.sock'
  if (process.env.DOCKER_HOST && !process.env.DOCKER_HOST.startsWith('unix://')) return true
  if (!existsSync(socketPath)) return false
  return new Promise((resolve) => {
    const req = request({ socketPath, path: '/_ping', timeout: 1_500 }, (res) => {
      res.resume()
      resolve(res.statusCode === 200)
    })
    req.on('error', () => resolve(false))
    req.on('timeout', () => {
      req.destroy()
      resolve(false)
    })
    req.end()
  })
}

/** PostgreSQL for the suite: TEST_DATABASE_URL, else testcontainers, else embedded. */
async function startPostgres(): Promise<{ url: string; stop: () => Promise<void> }> {
  if (process.env.TEST_DATABASE_URL) {
    return { url: process.env.TEST_DATABASE_URL, stop: async () => {} }
  }
  if (await dockerEngineAnswers()) {
    const { PostgreSqlContainer } = await import('@testcontainers/postgresql')
    const container = await new PostgreSqlContainer('postgres:17-alpine')
      .withCommand(['postgres', '-c', 'fsync=off', '-c', 'max_connections=300'])
      .start()
    return { url: container.getConnectionUri(), stop: async () => void (await container.stop()) }
  }
  const dir = await mkdtemp(path.join(tmpdir(), 'catbird-test-pg-'))
  // As root, PostgreSQL runs as another user: our own throwaway directory is
  // opened to it, so that the cluster is not placed in a system directory.
  await chmod(dir, 0o755)
  const port = 20_000 + Math.floor(Math.random() * 20_000)
  const embedded = await startEmbeddedPostgres({
    dataDir: path.join(dir, 'data'),
    port,
    // Durability is pointless for throwaway test data and slows every commit.
    settings: {
      fsync: 'off',
      synchronous_commit: 'off',
      full_page_writes: 'off',
      max_connections: '300',
    },
  })
  return {
    url: embedded.url,
    stop: async () => {
      await embedded.stop()
      await rm(dir, { recursive: true, force: true })
      // Where it went if `dir` was unreachable all the same (TMPDIR under /root).
      await rm(embedded.dataDir, { recursive: true, force: true })
    },
  }
}

export default async function setup(project: TestProject) {
  const pgServer = await startPostgres()
  const admin = new pg.Client(pgServer.url)
  await admin.connect()
  await admin.query(`DROP DATABASE IF EXISTS ${TEMPLATE}`)
  await admin.query(`CREATE DATABASE ${TEMPLATE}`)
  await admin.end()

  const templateUrl = new URL(pgServer.url)
  templateUrl.pathname = `/${TEMPLATE}`
  const db = openKysely(templateUrl.href, 1)
  await migrateToLatest(db)
  await db.destroy()

  // `npm run test:pgbouncer`: the whole suite with the server behind PgBouncer
  // in transaction mode (LISTEN goes direct, DATABASE_LISTEN_URL).
  let bouncer: Awaited<ReturnType<typeof startPgBouncer>> | undefined
  if (process.env.TEST_PGBOUNCER) {
    const binary = findPgBouncer()
    if (!binary) throw new Error(`TEST_PGBOUNCER is set, but there is ${NO_PGBOUNCER}`)
    bouncer = await startPgBouncer(binary, pgServer.url).catch(async (err: unknown) => {
      await pgServer.stop()
      throw err
    })
  }

  project.provide('pgAdminUrl', pgServer.url)
  project.provide('pgTemplate', TEMPLATE)
  project.provide('pgClientUrl', bouncer?.url ?? pgServer.url)
  return async () => {
    await bouncer?.stop()
    await pgServer.stop()
  }
}
