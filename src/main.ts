import path from 'node:path'
import pg from 'pg'
import { ConfigError, loadConfig, type Config } from './config.js'
import { createDatabase, databaseOptions } from './db/index.js'
import { startEmbeddedPostgres, type EmbeddedPostgres } from './db/embedded.js'
import { migrateToLatest } from './db/migrator.js'
import { projectRoot } from './paths.js'
import { buildServer } from './server.js'
import { startWorkers } from './workers/index.js'

const EMBEDDED_DATABASE = 'catbird'

/** With no DATABASE_URL: a real PostgreSQL under ./data, and a database for us in it. */
async function embeddedDatabaseUrl(config: Config, log: (msg: string) => void) {
  const embedded = await startEmbeddedPostgres({
    dataDir: path.resolve(projectRoot, config.EMBEDDED_PG_DATA_DIR),
    port: config.EMBEDDED_PG_PORT,
    log,
  })
  const admin = new pg.Client(embedded.url)
  await admin.connect()
  try {
    const exists = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [EMBEDDED_DATABASE])
    if (exists.rowCount === 0) await admin.query(`CREATE DATABASE ${EMBEDDED_DATABASE}`)
  } finally {
    await admin.end()
  }
  const url = new URL(embedded.url)
  url.pathname = `/${EMBEDDED_DATABASE}`
  return { embedded, url: url.href }
}

async function main(): Promise<void> {
  let config: Config
  try {
    config = loadConfig()
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`)
      process.exit(1)
    }
    throw err
  }

  let embedded: EmbeddedPostgres | undefined
  let databaseUrl = config.DATABASE_URL
  const bootLog: string[] = []
  if (!databaseUrl) {
    const started = await embeddedDatabaseUrl(config, (msg) => bootLog.push(msg))
    embedded = started.embedded
    databaseUrl = started.url
  }

  let onPoolError = (_err: Error) => {}
  const database = createDatabase({
    ...databaseOptions(config, databaseUrl),
    onPoolError: (err) => onPoolError(err),
  })
  const { app, ctx } = await buildServer({ config, database })
  onPoolError = (err) => app.log.warn({ err }, 'database connection lost')
  for (const msg of bootLog) app.log.info(msg)

  // Migrations get a connection without the request timeouts: rewriting a
  // large table may rightly take minutes.
  const migration = createDatabase({ url: databaseUrl, poolSize: 1 })
  const applied = await migrateToLatest(migration.db).finally(() => migration.close())
  app.log.info({ applied }, applied.length ? 'database migrated' : 'database schema is current')

  const workers = startWorkers(ctx, app.log)
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
      await database.close()
      await embedded?.stop()
      app.log.info('shutdown complete')
      process.exit(0)
    } catch (err) {
      app.log.error({ err }, 'shutdown failed')
      process.exit(1)
    }
  }
  process.on('SIGTERM', () => void shutdown('SIGTERM'))
  process.on('SIGINT', () => void shutdown('SIGINT'))

  await app.listen({ port: config.PORT, host: config.HOST })
  for (const w of workers) void w.runOnce()
}

main().catch((err: unknown) => {
  process.stderr.write(`fatal: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`)
  process.exit(1)
})
