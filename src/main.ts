import path from 'node:path'
import pg from 'pg'
import { pino, type Logger } from 'pino'
import { databaseUrl, loadConfig, type Config } from './config.js'
import { createDatabase, databaseOptions } from './db/index.js'
import { startEmbeddedPostgres, type EmbeddedPostgres } from './db/embedded.js'
import { migrateToLatest } from './db/migrator.js'
import { waitForDatabase } from './db/reachable.js'
import { projectRoot } from './paths.js'
import { assertPortFree, listenFailure } from './port.js'
import { buildServer, loggerOptions } from './server.js'
import { exitOnStartupFailure } from './startup-error.js'
import { version } from './version.js'
import { startWorkers } from './workers/index.js'
import { pushAnnouncement, pushSetup } from './workers/push.js'
import type { RunningWorker } from './workers/worker.js'

const EMBEDDED_DATABASE = 'catbird'

/** With no DATABASE_URL: a real PostgreSQL under ./data, and a database for us in it. */
async function startEmbeddedDatabase(config: Config, log: Logger) {
  const embedded = await startEmbeddedPostgres({
    dataDir: path.resolve(projectRoot, config.EMBEDDED_PG_DATA_DIR),
    port: config.EMBEDDED_PG_PORT,
    log: (msg) => log.info(msg),
  })
  try {
    const admin = new pg.Client(embedded.url)
    await admin.connect()
    try {
      const exists = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [EMBEDDED_DATABASE])
      if (exists.rowCount === 0) await admin.query(`CREATE DATABASE ${EMBEDDED_DATABASE}`)
    } finally {
      await admin.end()
    }
  } catch (err) {
    await embedded.stop()
    throw err
  }
  const url = new URL(embedded.url)
  url.pathname = `/${EMBEDDED_DATABASE}`
  // The password is generated per cluster; see README "The embedded database" for psql.
  log.debug({ url: url.href, dataDir: embedded.dataDir }, 'embedded PostgreSQL connection')
  return { embedded, url: url.href }
}

async function main(): Promise<void> {
  const config = loadConfig()
  // A logger before anything slow, so start-up says what it is doing.
  const log = pino(loggerOptions(config))
  await assertPortFree(config.HOST, config.PORT)
  log.info({ version }, 'starting catbird-mls-ds')
  // Its key is read now: a key that cannot be used stops start-up before anything runs.
  const push = pushSetup(config)
  log.info(...pushAnnouncement(push))

  let embedded: EmbeddedPostgres | undefined
  let url = databaseUrl(config)
  if (!url) {
    const started = await startEmbeddedDatabase(config, log)
    embedded = started.embedded
    url = started.url
  }
  try {
    await waitForDatabase(url, config.DATABASE_STARTUP_WAIT_MS, log)
  } catch (err) {
    await embedded?.stop()
    throw err
  }

  const database = createDatabase({
    ...databaseOptions(config, url),
    onPoolError: (err) => log.warn({ err }, 'database connection lost'),
  })
  // Once, whether a failed start or a signal gets there first.
  let released: Promise<void> | undefined
  const release = () =>
    (released ??= (async () => {
      await database.close()
      await embedded?.stop()
    })())
  const { app, ctx } = await buildServer({ config, database, logger: log })

  const workers: RunningWorker[] = []
  let shuttingDown = false
  const shutdown = async (signal: string) => {
    if (shuttingDown) return
    shuttingDown = true
    app.log.info({ signal }, 'shutting down: finishing in-flight requests')
    const force = setTimeout(() => {
      app.log.error('shutdown timed out; exiting')
      process.exit(1)
    }, config.SHUTDOWN_TIMEOUT_MS)
    force.unref()
    try {
      await app.close()
      await Promise.all(workers.map((w) => w.stop()))
      await release()
      app.log.info('shutdown complete')
      process.exit(0)
    } catch (err) {
      app.log.error({ err }, 'shutdown failed')
      process.exit(1)
    }
  }
  process.on('SIGTERM', () => void shutdown('SIGTERM'))
  process.on('SIGINT', () => void shutdown('SIGINT'))

  try {
    // Migrations get a connection without the request timeouts: rewriting a
    // large table may rightly take minutes.
    const migration = createDatabase({ url, poolSize: 1 })
    const applied = await migrateToLatest(migration.db).finally(() => migration.close())
    app.log.info({ applied }, applied.length ? 'database migrated' : 'database schema is current')
    await app.listen({ port: config.PORT, host: config.HOST }).catch((err: unknown) => {
      throw listenFailure(err, config.PORT)
    })
  } catch (err) {
    // Leave nothing running behind a failed start (the embedded cluster included).
    await app.close()
    await release()
    throw err
  }
  workers.push(...startWorkers(ctx, app.log, push))
  for (const w of workers) void w.runOnce()
}

main().catch(exitOnStartupFailure)
