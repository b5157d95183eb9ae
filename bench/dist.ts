import { execFile } from 'node:child_process'
import path from 'node:path'
import { pathToFileURL } from 'node:url'
import { promisify } from 'node:util'
import type * as ConfigModule from '../src/config.js'
import type * as DbModule from '../src/db/index.js'
import type * as EmbeddedModule from '../src/db/embedded.js'
import type * as MigratorModule from '../src/db/migrator.js'
import type * as MlsModule from '../src/mls/index.js'
import type * as MessagesModule from '../src/services/messages.js'
import type * as ServerModule from '../src/server.js'
import type * as WorkersModule from '../src/workers/index.js'
// From source: it is what finds dist/, which may not be built yet.
import { projectRoot } from '../src/paths.js'

/** `npm run build`: the bench measures the compiled code `npm start` runs. */
export async function buildProduction(): Promise<void> {
  await promisify(execFile)('npm', ['run', '--silent', 'build'], { cwd: projectRoot })
}

const load = <T>(module: string) => import(pathToFileURL(path.join(projectRoot, 'dist', module)).href) as Promise<T>

/** The production build's modules (dist/), typed by the sources they were compiled from. */
export async function loadDist() {
  const [config, db, embedded, migrator, mls, messages, server, workers] = await Promise.all([
    load<typeof ConfigModule>('config.js'),
    load<typeof DbModule>('db/index.js'),
    load<typeof EmbeddedModule>('db/embedded.js'),
    load<typeof MigratorModule>('db/migrator.js'),
    load<typeof MlsModule>('mls/index.js'),
    load<typeof MessagesModule>('services/messages.js'),
    load<typeof ServerModule>('server.js'),
    load<typeof WorkersModule>('workers/index.js'),
  ])
  return {
    loadConfig: config.loadConfig,
    createDatabase: db.createDatabase,
    startEmbeddedPostgres: embedded.startEmbeddedPostgres,
    migrateToLatest: migrator.migrateToLatest,
    migrateDown: migrator.migrateDown,
    readMessageHeader: mls.readMessageHeader,
    sendMessage: messages.sendMessage,
    storeMessageStatement: messages.storeMessageStatement,
    listMessages: messages.listMessages,
    buildServer: server.buildServer,
    startIdempotencyCleanup: workers.startIdempotencyCleanup,
    startRetention: workers.startRetention,
  }
}

export type Dist = Awaited<ReturnType<typeof loadDist>>
