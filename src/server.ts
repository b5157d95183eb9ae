import { randomUUID } from 'node:crypto'
import type { LoggerOptions } from 'pino'
import Fastify, {
  LogController,
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifyServerOptions,
  type onResponseHookHandler,
} from 'fastify'
import { handlers as defaultHandlers, subscriptionHandlers } from './api/index.js'
import { listenUrl, pushConfigured, type Config } from './config.js'
import type { AppContext } from './context.js'
import { pingDatabase, type Database } from './db/index.js'
import { EventHub } from './events/hub.js'
import { Metrics } from './metrics.js'
import { METRICS_PATH, metricsRoute } from './metrics-route.js'
import { AppViewBlocks } from './bluesky/index.js'
import { TakenDown } from './services/accounts.js'
import { keyPackageBuckets } from './services/keyPackages.js'
import { pushQueueStats } from './services/pushQueue.js'
import { createAuthVerifier } from './xrpc/auth.js'
import { loadLexicons } from './xrpc/lexicons.js'
import { rateLimit, rateLimitOptions } from './xrpc/rate-limit.js'
import { didDocumentRoute } from './did-document.js'
import { clientErrorHandler, sendXrpcError } from './xrpc/errors.js'
import { xrpcRoutes } from './xrpc/routes.js'
import { subscriptionRoutes } from './xrpc/websocket.js'
import type { XrpcHandlers } from './xrpc/types.js'
import { version } from './version.js'

export interface BuildServerOptions {
  config: Config
  database: Database
  logger?: FastifyServerOptions['loggerInstance'] | FastifyServerOptions['logger']
  /** Validate every output against its lexicon (on in tests). */
  validateOutput?: boolean
  handlers?: XrpcHandlers
}

export interface Server {
  app: FastifyInstance
  ctx: AppContext
}

const HEALTH_PATH = '/xrpc/_health'

/** Log options: JSON lines, or pino-pretty for people; never a token. */
export function loggerOptions(config: Config): LoggerOptions {
  return {
    level: config.LOG_LEVEL,
    redact: ['req.headers.authorization', 'req.headers["idempotency-key"]'],
    ...(config.LOG_PRETTY ? { transport: { target: 'pino-pretty' } } : {}),
  }
}

/** The context of one server, from its configuration and its database. */
function createAppContext(config: Config, database: Database, log: FastifyBaseLogger): AppContext {
  const metrics = new Metrics()
  metrics.observePool(database.pool)
  metrics.observeKeyPackages(() => keyPackageBuckets(database.db))
  if (pushConfigured(config)) metrics.observePushQueue(() => pushQueueStats(database.db))
  const poolOptions = database.pool.options
  return {
    config,
    db: database.db,
    pool: database.pool,
    lexicons: loadLexicons(),
    auth: createAuthVerifier({
      serviceDid: config.SERVICE_DID,
      plcUrl: config.PLC_URL,
      didCacheTtlMs: config.DID_CACHE_TTL_SECONDS * 1000,
      maxLifetimeSeconds: config.MAX_TOKEN_LIFETIME_SECONDS,
      requireIat: config.REQUIRE_TOKEN_IAT,
    }),
    metrics,
    events: new EventHub({
      db: database.db,
      // The pool's settings (keep-alive probes), on the listen URL when there is one.
      listen: config.EVENT_LISTEN
        ? { ...poolOptions, connectionString: listenUrl(config) ?? poolOptions.connectionString }
        : undefined,
      log,
      pollIntervalMs: config.EVENT_POLL_INTERVAL_MS,
      // Delegated writes are what a Citus cluster runs with.
      batchRead: config.DATABASE_DELEGATED_WRITES ? 'apart' : 'together',
      reads: metrics.eventHubReads,
    }),
    push: pushConfigured(config) ? { commits: config.PUSH_COMMITS } : undefined,
    blocks: {
      graph:
        config.APPVIEW_URL === 'off'
          ? undefined
          : new AppViewBlocks({
              url: config.APPVIEW_URL,
              cacheSeconds: config.BLOCKS_CACHE_SECONDS,
              timeoutMs: config.APPVIEW_TIMEOUT_MS,
            }),
      failOpen: config.BLOCKS_FAIL_OPEN,
    },
    takedowns: new TakenDown(database.db, config.TAKEDOWN_REFRESH_SECONDS * 1000, (err) =>
      log.warn({ err }, 'could not read the taken-down accounts; keeping the list read before'),
    ),
  }
}

/** Builds the app (routes, hooks, context) without listening or starting workers. */
export async function buildServer(opts: BuildServerOptions): Promise<Server> {
  const { config, database } = opts
  const loggerOpt =
    opts.logger && typeof opts.logger === 'object' && 'child' in opts.logger
      ? { loggerInstance: opts.logger }
      : { logger: opts.logger ?? loggerOptions(config) }
  const app = Fastify({
    ...loggerOpt,
    bodyLimit: config.BODY_LIMIT_BYTES,
    requestTimeout: config.REQUEST_TIMEOUT_MS,
    connectionTimeout: config.CONNECTION_TIMEOUT_MS,
    // Node checks request timeouts on an interval (30 s by default) and skips
    // the check while headersTimeout exceeds requestTimeout: without both,
    // a slow client holds its connection far past the timeout.
    http: {
      connectionsCheckingInterval: Math.min(1_000, Math.max(100, config.REQUEST_TIMEOUT_MS)),
      ...(config.REQUEST_TIMEOUT_MS > 0 ? { headersTimeout: Math.min(60_000, config.REQUEST_TIMEOUT_MS) } : {}),
    },
    requestIdHeader: 'x-request-id',
    genReqId: () => randomUUID(),
    // Fastify hands every request's child logger an options object, even an
    // empty one, which sends pino down its slow path (the level methods
    // rebuilt on every request). Without options it takes the fast one.
    childLoggerFactory: (logger, bindings, opts) =>
      opts.level === undefined && opts.serializers === undefined
        ? logger.child(bindings)
        : logger.child(bindings, opts),
    // Health probes and metrics scrapes come every few seconds (Docker's
    // HEALTHCHECK, Prometheus): their routes log one debug line instead of
    // two info lines each.
    logController: new LogController({
      disableRequestLogging: (request) => request.url === HEALTH_PATH || request.url === METRICS_PATH,
    }),
    // Fastify's own 404 for HEAD/OPTIONS etc. still goes through our handler.
    return503OnClosing: true,
    clientErrorHandler,
  }) as unknown as FastifyInstance

  const ctx = createAppContext(config, database, app.log)
  const { metrics } = ctx
  // The hub listens while the server runs, and ends its streams before close
  // waits for connections (a stream never ends on its own).
  app.addHook('onReady', async () => ctx.events.start())
  // Streams opened before a takedown end when this instance hears of it.
  ctx.takedowns.onTakenDown((did) => ctx.events.endStreamsOf(did))
  app.addHook('onReady', async () => ctx.takedowns.start())
  app.addHook('onClose', async () => ctx.takedowns.stop())
  app.addHook('preClose', async () => ctx.events.stop())
  app.addHook('onClose', async () => ctx.events.flush())

  app.setErrorHandler((err, request, reply) => sendXrpcError(err, request, reply))
  app.setNotFoundHandler((request, reply) => {
    const path = request.url.split('?')[0] ?? ''
    // XRPC's answer for a method the server does not have (as @atproto/xrpc-server gives).
    if (path.startsWith('/xrpc/')) {
      return reply.status(501).send({
        error: 'MethodNotImplemented',
        message: `${path.slice('/xrpc/'.length)} is not implemented by this server`,
      })
    }
    return reply.status(404).send({ error: 'NotFound', message: `No route for ${request.method} ${path}` })
  })
  // While closing, in-flight requests finish but their keep-alive
  // connections are let go, so close() does not wait for clients to hang up.
  let closing = false
  app.addHook('preClose', async () => {
    closing = true
  })
  // The hooks every request runs are callback-style: an async hook costs a promise and a tick per request.
  app.addHook('onSend', (_request, reply, payload, done) => {
    if (closing) reply.header('connection', 'close')
    done(null, payload)
  })
  app.addHook('onResponse', (request, reply, done) => {
    const nsid = request.routeOptions.config.nsid
    if (nsid) metrics.observeRequest(nsid, reply.statusCode, reply.elapsedTime / 1000)
    done()
  })

  /** The one line a quiet route's request logs, at debug. */
  const debugLine =
    (msg: string): onResponseHookHandler =>
    async (request, reply) =>
      request.log.debug({ status: reply.statusCode, responseTime: reply.elapsedTime }, msg)
  // Someone opening the server's address in a browser, or curl-ing it, learns what it is and where to read on.
  app.get('/', async () => ({
    name: 'catbird-mls-ds',
    version,
    docs: 'README.md of catbird-mls-ds (its Quickstart makes a first call); methods at /xrpc/blue.catbird.mls.*, health at /xrpc/_health',
  }))
  app.get(HEALTH_PATH, { onResponse: debugLine('health probe') }, async (_request, reply) => {
    try {
      await pingDatabase(database.db, config.HEALTH_TIMEOUT_MS)
      return { version }
    } catch (err) {
      app.log.warn({ err }, 'health check: database unreachable')
      return reply.status(503).send({ version, error: 'ServiceUnavailable', message: 'database unreachable' })
    }
  })

  if (config.RATE_LIMIT_PER_MINUTE > 0) await app.register(rateLimit, rateLimitOptions(config))
  await app.register(metricsRoute, { ctx, onResponse: debugLine('metrics scrape') })
  await app.register(didDocumentRoute, { serviceDid: config.SERVICE_DID })
  await app.register(subscriptionRoutes, { ctx, handlers: subscriptionHandlers })
  await app.register(xrpcRoutes, {
    ctx,
    handlers: opts.handlers ?? defaultHandlers,
    validateOutput: opts.validateOutput ?? false,
  })
  return { app, ctx }
}
