import type { FastifyInstance } from 'fastify'
import { loadConfig, type Config } from '../../src/config.js'
import type { AppContext } from '../../src/context.js'
import { createDatabase, databaseOptions, type Database } from '../../src/db/index.js'
import { buildServer } from '../../src/server.js'
import type { XrpcHandler, XrpcHandlers } from '../../src/xrpc/types.js'
import { compareDelegatedWrites, type ComparedWrite } from './compare-delegated.js'
import { createTestDatabase, type TestDatabase } from './database.js'
import { SeedClient } from './seed.js'
import { SERVICE_DID } from './users.js'
import { xrpcClient, type XrpcClient } from './xrpc.js'

/** `call` and `callRaw` call an XRPC method over real HTTP as a user; `seed` takes scenario steps through them. */
export interface TestApp extends XrpcClient {
  app: FastifyInstance
  ctx: AppContext
  database: Database
  testDb: TestDatabase
  url: string
  seed: SeedClient
  close(): Promise<void>
}

function testConfig(overrides: Record<string, string> = {}): Config {
  return loadConfig({
    SERVICE_DID,
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    // The tests have no internet: the Bluesky AppView is a local one, for the tests about blocks (appview.ts).
    APPVIEW_URL: 'off',
    // `DATABASE_PREPARED_STATEMENTS=false npm test` runs the suite as behind a pooler that cannot keep them.
    DATABASE_PREPARED_STATEMENTS: process.env.DATABASE_PREPARED_STATEMENTS,
    // On a Citus cluster (scripts/citus.sh test), as the server runs there.
    DATABASE_DELEGATED_WRITES: process.env.DATABASE_DELEGATED_WRITES,
    ...overrides,
  })
}

export interface TestAppOptions {
  config?: Record<string, string>
  testDb?: TestDatabase
  logger?: unknown
  /** Handlers by NSID; a test may install one that breaks its lexicon on purpose. */
  handlers?: Record<string, XrpcHandler<never, never, unknown>>
  /** A loopback port to listen on; any free one by default. */
  port?: number
}

/**
 * The real server on a fresh database of its own, listening on a loopback
 * port, with output validation on.
 */
export async function startTestApp(opts: TestAppOptions = {}): Promise<TestApp> {
  const testDb = opts.testDb ?? (await createTestDatabase())
  // `TEST_COMPARE_DELEGATED=1 npx vitest run <files>` (plain PostgreSQL): every delegated write of the
  // files runs both as its statement and as its function (compare-delegated.ts), which must agree.
  const compared: ComparedWrite[] | undefined = process.env.TEST_COMPARE_DELEGATED ? [] : undefined
  // LISTEN needs a session of its own: straight to PostgreSQL when the suite runs behind PgBouncer.
  const config = testConfig({
    DATABASE_URL: testDb.url,
    DATABASE_LISTEN_URL: testDb.directUrl,
    ...opts.config,
    ...(compared ? { DATABASE_DELEGATED_WRITES: 'true' } : {}),
  })
  const database = createDatabase(databaseOptions(config, testDb.url))
  if (compared) database.pool.on('connect', (client) => compareDelegatedWrites(client, compared))
  const { app, ctx } = await buildServer({
    config,
    database,
    validateOutput: true,
    ...(opts.logger ? { logger: opts.logger as never } : {}),
    ...(opts.handlers ? { handlers: opts.handlers as XrpcHandlers } : {}),
  })
  const url = await app.listen({ port: opts.port ?? 0, host: '127.0.0.1' })

  const client = xrpcClient(url)

  return {
    app,
    ctx,
    database,
    testDb,
    url,
    ...client,
    seed: new SeedClient(client),
    async close() {
      await app.close()
      await database.close()
      if (!opts.testDb) await testDb.drop()
      const differing = compared?.filter((run) => run.difference)
      if (differing?.length) {
        throw new Error(
          `delegated writes differ as statements and functions:\n${differing.map((run) => `${run.write}: ${run.difference}`).join('\n')}`,
        )
      }
    },
  }
}
