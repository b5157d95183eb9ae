import { z } from 'zod'
import { StartupError } from './startup-error.js'

const MiB = 1024 * 1024

const int = (min: number, max = Number.MAX_SAFE_INTEGER) => z.coerce.number().int().min(min).max(max)

/** Apple's key and team ids: 10 characters, upper case letters and digits. */
const appleId = z.string().regex(/^[A-Z0-9]{10}$/, 'must be the 10-character id Apple gave (A-Z, 0-9)')

const bool = z.enum(['true', 'false', '1', '0', 'yes', 'no']).transform((v) => v === 'true' || v === '1' || v === 'yes')

/**
 * Every setting the server reads, with its environment variable name, default
 * and meaning. The README's configuration table is generated from this schema
 * (`npm run docs:config`), so descriptions here are the documentation.
 */
export const configSchema = z
  .object({
    PORT: int(0, 65535).default(3000).describe('TCP port the XRPC server listens on.'),
    HOST: z.string().min(1).default('0.0.0.0').describe('Interface the server binds to.'),
    DATABASE_URL: z
      .url({ protocol: /^postgres(ql)?$/ })
      .optional()
      .describe(
        'PostgreSQL connection string. When unset, `npm start` runs an embedded PostgreSQL with its data under `EMBEDDED_PG_DATA_DIR`.',
      ),
    DATABASE_PASSWORD: z
      .string()
      .min(1)
      .optional()
      .describe(
        "Password of `DATABASE_URL`'s user, kept out of the URL so that any character works unescaped (docker compose passes `POSTGRES_PASSWORD` here).",
      ),
    DATABASE_LISTEN_URL: z
      .url({ protocol: /^postgres(ql)?$/ })
      .optional()
      .describe(
        "Connection string of the one session connection per instance that LISTENs for other instances' messages (see `EVENT_LISTEN`); `DATABASE_PASSWORD` applies when it has no password. Behind a pooler in transaction mode (PgBouncer), point it at PostgreSQL itself or at a session-mode pool: LISTEN needs a session. Defaults to `DATABASE_URL`.",
      ),
    DATABASE_POOL_SIZE: int(1, 500).default(20).describe('Maximum connections in the pool.'),
    DATABASE_PREPARED_STATEMENTS: bool
      .default(true)
      .describe(
        'Send the hot statements (sendMessage, getMessages, getEpoch, the key-package claim, the idempotency lookup) as named prepared statements, parsed and planned once per connection. Turn off behind a connection pooler in transaction mode that cannot keep prepared statements (PgBouncer before 1.21, or without `max_prepared_statements`).',
      ),
    DATABASE_DELEGATED_WRITES: bool
      .default(false)
      .describe(
        "On a Citus cluster: run the writes of sendMessage, publishKeyPackage(s), registerDevice, the key-package claims, createConvo and addMembers as PL/pgSQL functions distributed by their shard key, each sent whole to the node that holds its shard, where each of its statements runs on that node's own shards (one task, no two-phase commit on any node); the server makes each function when it first sends its write. The idempotency claim of createConvo and addMembers then sends its `SET LOCAL lock_timeout` apart, propagated to the node where it waits, and a statement on every shard (the event hub's reads, the sweeps) runs over the one connection each session keeps to each node. Off on a single PostgreSQL, where the statements run as they are.",
      ),
    DATABASE_STATEMENT_TIMEOUT_MS: int(0)
      .default(5_000)
      .describe(
        'PostgreSQL cancels any statement of this server running longer than this (`statement_timeout`, set on each connection); the request gets 503 `ServiceUnavailable`. 0 disables. Migrations run without it.',
      ),
    DATABASE_QUERY_TIMEOUT_MS: int(0)
      .default(6_000)
      .describe(
        'How long the server waits for the database to answer a query, or to hand out a connection, before the request gets 503 `ServiceUnavailable` (a silent or frozen database). A connection whose query timed out is closed, not reused. Keep it above `DATABASE_STATEMENT_TIMEOUT_MS`, so that a slow statement is cancelled by PostgreSQL first. 0 disables.',
      ),
    DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS: int(0)
      .default(10_000)
      .describe(
        'PostgreSQL ends a session of this server that sits idle inside a transaction this long (`idle_in_transaction_session_timeout`): a server cut off mid-transaction by a network partition does not keep its locks. 0 disables.',
      ),
    DATABASE_STARTUP_WAIT_MS: int(0)
      .default(30_000)
      .describe(
        'How long start-up keeps trying to reach PostgreSQL (a database still starting, a network not yet up), with one log line per attempt, before it stops naming the host and the cause. A database that answers with an error (a wrong password, no such database) stops start-up at once. 0: one attempt.',
      ),
    HEALTH_TIMEOUT_MS: int(1)
      .default(1_000)
      .describe('`/xrpc/_health` answers 503 when the database has not answered its check within this time.'),
    EMBEDDED_PG_DATA_DIR: z
      .string()
      .min(1)
      .default('./data/postgres')
      .describe('Where the embedded PostgreSQL keeps its data (only without `DATABASE_URL`).'),
    EMBEDDED_PG_PORT: int(1, 65535)
      .default(54329)
      .describe('Loopback port of the embedded PostgreSQL (only without `DATABASE_URL`).'),
    SERVICE_DID: z
      .string()
      .regex(/^did:[a-z]+:[a-zA-Z0-9._:%-]+$/, 'must be a DID such as did:web:example.com')
      .default('did:web:localhost')
      .meta({ examples: ['did:web:mls.example.com'] })
      .describe(
        'DID of this service; service-auth tokens must name it as their `aud`. A `did:web` of a host has its document served at `/.well-known/did.json`.',
      ),
    PLC_URL: z.url().default('https://plc.directory').describe('PLC directory used to resolve `did:plc` callers.'),
    MAX_TOKEN_LIFETIME_SECONDS: int(1)
      .default(3600)
      .describe(
        'Service-auth tokens whose `exp` is further than this from now are refused (401 `BadJwt`): a leaked long-lived token would otherwise open every conversation of its issuer for its whole life.',
      ),
    REQUIRE_TOKEN_IAT: bool
      .default(true)
      .describe('Refuse service-auth tokens without an `iat` (issued-at) claim (401 `BadJwt`).'),
    DID_CACHE_TTL_SECONDS: int(1)
      .default(3600)
      .describe('How long resolved DID documents are cached before they are refreshed.'),
    LOG_LEVEL: z
      .enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])
      .default('info')
      .describe('Minimum level of log lines written.'),
    LOG_PRETTY: bool.default(false).describe('Human-readable logs (pino-pretty) instead of JSON.'),
    BODY_LIMIT_BYTES: int(1024)
      .default(16 * MiB)
      .describe(
        'Largest accepted request body; larger requests get 413 `PayloadTooLarge`. Base64 makes JSON bodies about 4/3 of the raw bytes.',
      ),
    MAX_MESSAGE_BYTES: int(1)
      .default(10 * MiB)
      .describe('Largest MLS ciphertext `sendMessage` accepts (the lexicon allows 10 MiB).'),
    MAX_WELCOME_BYTES: int(1)
      .default(1 * MiB)
      .describe('Largest MLS Welcome message accepted, decoded.'),
    MAX_COMMIT_BYTES: int(1)
      .default(1 * MiB)
      .describe('Largest MLS commit accepted, decoded.'),
    MAX_GROUP_INFO_BYTES: int(1)
      .default(1 * MiB)
      .describe(
        'Largest MLS GroupInfo accepted, decoded (it carries the ratchet tree: a few hundred bytes per member).',
      ),
    MAX_KEY_PACKAGES_PER_USER: int(1).default(200).describe('Unconsumed key packages one user may keep on the server.'),
    MAX_DEVICES_PER_USER: int(1)
      .default(10)
      .describe(
        'Devices one user may register (`registerDevice`); more get 400 `TooManyDevices` until one is deleted.',
      ),
    KEY_PACKAGE_REPLENISH_THRESHOLD: int(1)
      .default(10)
      .describe(
        '`getKeyPackageStats` tells clients to publish more key packages when they have fewer unused ones than this (its `threshold`).',
      ),
    MAX_MEMBERS_PER_CONVO: int(2).default(1000).describe('Largest number of current members in one conversation.'),
    KEY_PACKAGE_MAX_LIFETIME_DAYS: int(1)
      .default(90)
      .describe(
        'Latest allowed end of a published key package: of its MLS lifetime and of `expires`, in days from now.',
      ),
    PENDING_ADDITION_CLAIM_SECONDS: int(5, 3600)
      .default(60)
      .describe(
        "How long a member's claim on adding another member's new device holds (claimPendingDeviceAddition) before another member may take it.",
      ),
    IDEMPOTENCY_TTL_SECONDS: int(60)
      .default(24 * 3600)
      .describe('How long a stored idempotent response can be replayed.'),
    IDEMPOTENCY_WAIT_MS: int(0, 60_000)
      .default(5_000)
      .describe(
        'How long a request waits for a concurrent request with the same key before answering 409 `IdempotencyRequestInProgress`.',
      ),
    WELCOME_GRACE_SECONDS: int(1)
      .default(300)
      .describe('How long a fetched but unconfirmed Welcome can be fetched again.'),
    WELCOME_RETENTION_DAYS: int(1)
      .default(14)
      .describe('How long an unconsumed Welcome is kept before the sweep deletes it.'),
    WORKER_INTERVAL_SECONDS: int(1)
      .default(60)
      .describe('How often the background workers (idempotency cleanup, Welcome sweep, retention) run.'),
    WORKER_BATCH_SIZE: int(1, 100_000)
      .default(1_000)
      .describe('Rows one worker pass deletes or updates per statement.'),
    WORKER_BATCH_PAUSE_MS: int(0, 10_000)
      .default(25)
      .describe('Pause between two batches of one worker pass, so a large backlog does not crowd out requests.'),
    MESSAGE_RETENTION_DAYS: int(0)
      .default(30)
      .describe(
        'Messages (commits included) older than this are deleted by the retention worker, oldest first; a device that had not caught up by then gets `CursorTooOld` and rejoins by external commit. 0 keeps them.',
      ),
    MODERATION_RETENTION_DAYS: int(0)
      .default(90)
      .describe(
        "Reports (`reportMember`), the admins' log of each conversation (roles, removals, policy changes) and device additions settled longer ago than this are deleted by the retention worker. 0 keeps them.",
      ),
    APPVIEW_URL: z
      .union([z.literal('off'), z.url({ protocol: /^https?$/ })])
      .default('https://public.api.bsky.app')
      .describe(
        'Bluesky AppView whose `app.bsky.graph.getRelationships` says who blocks whom: `createConvo` and `addMembers` refuse to put two users who block each other in one conversation. `off`: only the blocks users report themselves (`handleBlockChange`) count.',
      ),
    APPVIEW_TIMEOUT_MS: int(1, 60_000).default(3_000).describe('How long one call to the AppView may take.'),
    BLOCKS_CACHE_SECONDS: int(0)
      .default(60)
      .describe('How long what the AppView said about two users is kept before it is asked again.'),
    BLOCKS_FAIL_OPEN: bool
      .default(false)
      .describe(
        'When the AppView cannot be read, let adds through unchecked for Bluesky blocks (logged). Off: such adds are refused with 503 `BlueskyServiceUnavailable` (fail closed).',
      ),
    TAKEDOWN_REFRESH_SECONDS: int(1)
      .default(10)
      .describe(
        'How often each instance reads the list of taken-down accounts (`npm run admin -- takedown`): a takedown or restore takes effect everywhere within this time.',
      ),
    SHUTDOWN_TIMEOUT_MS: int(0)
      .default(25_000)
      .describe('How long shutdown waits for in-flight requests before closing anyway.'),
    REQUEST_TIMEOUT_MS: int(0).default(30_000).describe('Time a client has to send a whole request (0 disables).'),
    CONNECTION_TIMEOUT_MS: int(0)
      .default(120_000)
      .describe('A connection with no traffic for this long is closed (0 disables).'),
    SSE_KEEPALIVE_SECONDS: int(1).default(15).describe('How often an idle event stream gets a keep-alive comment.'),
    SSE_MAX_STREAMS_PER_CALLER: int(1)
      .default(5)
      .describe('Open event streams one caller may hold on an instance; more get 429.'),
    SSE_MAX_BUFFER_BYTES: int(1024)
      .default(1024 * 1024)
      .describe('Unsent bytes an event stream may queue before a slow client is disconnected.'),
    WEBSOCKET_URL: z
      .url({ protocol: /^wss?$/ })
      .optional()
      .meta({ examples: ['wss://mls.example.com/xrpc/blue.catbird.mls.subscribeConvoEvents'] })
      .describe(
        "The WebSocket URL of `subscribeConvoEvents` as clients reach it (through your proxy), handed out as getSubscriptionTicket's `endpoint`. Default: `wss://<host>/xrpc/blue.catbird.mls.subscribeConvoEvents` for a `SERVICE_DID` of `did:web:<host>`, `ws://localhost:<PORT>/...` for `did:web:localhost`. Catbird's iOS client connects to the host of `SERVICE_DID` whatever this says.",
      ),
    WEBSOCKET_MAX_SOCKETS_PER_CALLER: int(1)
      .default(10)
      .describe(
        'Open `subscribeConvoEvents` WebSockets one caller may hold on an instance; another is closed with the error `RateLimitExceeded`.',
      ),
    WEBSOCKET_MAX_BUFFER_BYTES: int(1024)
      .default(1024 * 1024)
      .describe(
        'Bytes of events a WebSocket may have waiting to be sent before its client counts as too slow: it gets the error `ConsumerTooSlow` and is closed, and resumes by cursor.',
      ),
    WEBSOCKET_PING_SECONDS: int(1)
      .default(30)
      .describe('How often each WebSocket is pinged; one that has not answered the previous ping is closed.'),
    EVENT_POLL_INTERVAL_MS: int(10, 600_000)
      .default(2_000)
      .describe(
        'How often each instance checks for new messages without being notified: the bound on event delay if an instance stopped before announcing its write.',
      ),
    EVENT_LISTEN: bool
      // An input default (not `.default(true)`), so that the generated docs show it.
      .prefault('true')
      .describe(
        "Hear of other instances' messages at once through a LISTEN connection (`DATABASE_LISTEN_URL`), and tell them of this instance's with NOTIFY. Off: no LISTEN and no NOTIFY at all; event streams get other instances' messages by polling, within `EVENT_POLL_INTERVAL_MS` (lower it), and this instance's at once.",
      ),
    METRICS_TOKEN: z
      .string()
      .min(16, 'must be at least 16 characters')
      .optional()
      .describe(
        'Bearer token required by `GET /metrics`, at least 16 characters. When unset, /metrics answers loopback clients only.',
      ),
    RATE_LIMIT_PER_MINUTE: int(0)
      .default(0)
      .describe(
        'Requests one caller (DID) may make per minute before 429 `RateLimitExceeded`; 0 disables. Counted per instance.',
      ),
    APNS_KEY_FILE: z
      .string()
      .min(1)
      .optional()
      .describe(
        'Path of the team\'s APNs token signing key (the `.p8` file from Apple). With `APNS_KEY_ID`, `APNS_TEAM_ID` and `APNS_TOPIC` it turns push notifications on (docs/operating.md, "Push notifications"); unset, nothing is pushed. Set them alike on every instance.',
      ),
    APNS_KEY_ID: appleId.optional().describe('The 10-character id Apple gave with the signing key.'),
    APNS_TEAM_ID: appleId.optional().describe('The 10-character id of the Apple developer team the key belongs to.'),
    APNS_TOPIC: z.string().min(1).optional().describe("The app's bundle id, which pushes are for."),
    APNS_PRODUCTION: bool
      .prefault('false')
      .describe(
        "Push through APNs's production host (`api.push.apple.com`); off, its sandbox (`api.sandbox.push.apple.com`), which apps built for development use.",
      ),
    APNS_ENDPOINT: z
      .url({ protocol: /^https$/ })
      .optional()
      .describe(
        "Where to push instead of Apple's host (a proxy, a test server): `https://host[:port]`. TLS trusts the system's certificate authorities and those of `NODE_EXTRA_CA_CERTS`.",
      ),
    PUSH_PAYLOAD: z
      .enum(['message', 'wake'])
      .default('message')
      .describe(
        'What a push carries. `message`: what the app\'s notification extension reads to show the message (the conversation, the message\'s id, sequence number and epoch, the recipient, and the ciphertext when the payload stays within 4 KB). `wake`: nothing but a generic alert. What each tells Apple: docs/operating.md, "Push notifications".',
      ),
    PUSH_RECIPIENT: z
      .enum(['did', 'sha256'])
      .default('did')
      .describe(
        'How a `message` push names the account it is for: `recipient_did`, the DID (read by every build of the app), or `recipient_account`, the SHA-256 of the DID in hex (read by builds since February 2026).',
      ),
    PUSH_COMMITS: bool
      .prefault('false')
      .describe('Also push commits to the other members, as background pushes that wake the app to fetch them.'),
    PUSH_TTL_SECONDS: int(1, 30 * 86_400)
      .default(86_400)
      .describe(
        'How long a push stays worth sending after what it is about was stored: APNs keeps it that long for a device that is offline (`apns-expiration`), and one not sent by then is dropped and counted.',
      ),
    PUSH_CONCURRENCY: int(1, 1_000)
      .default(100)
      .describe('Requests to APNs an instance has in flight at once, on one HTTP/2 connection.'),
    PUSH_POLL_INTERVAL_MS: int(10, 60_000)
      .default(250)
      .describe('How often an idle instance looks for pushes to send: the delay before a push leaves.'),
    PUSH_LEASE_SECONDS: int(2, 3_600)
      .default(60)
      .describe(
        'How long an instance holds the pushes it took before another may take them over (it stopped): they are sent again then, with the same `apns-id`. A request to APNs gets half of it to be answered.',
      ),
    PUSH_RETRY_BASE_MS: int(1, 3_600_000)
      .default(1_000)
      .describe(
        'First wait before a push APNs refused for now (429, 5xx, no answer) is sent again; each further attempt waits twice as long, up to 10 minutes, with jitter.',
      ),
  })
  .superRefine((config, ctx) => {
    const { DATABASE_QUERY_TIMEOUT_MS: query, DATABASE_STATEMENT_TIMEOUT_MS: statement } = config
    // Otherwise a slow statement gets its connection thrown away instead of
    // being cancelled by PostgreSQL.
    if (query > 0 && statement > 0 && query <= statement) {
      ctx.addIssue({
        code: 'custom',
        path: ['DATABASE_QUERY_TIMEOUT_MS'],
        message: `must be above DATABASE_STATEMENT_TIMEOUT_MS (${statement})`,
      })
    }
    if (config.DATABASE_LISTEN_URL && !config.DATABASE_URL) {
      ctx.addIssue({
        code: 'custom',
        path: ['DATABASE_LISTEN_URL'],
        message: 'is a second way to DATABASE_URL, which is not set',
      })
    }
    // Push needs all four or none.
    const apns = ['APNS_KEY_FILE', 'APNS_KEY_ID', 'APNS_TEAM_ID', 'APNS_TOPIC'] as const
    const missing = apns.filter((name) => config[name] === undefined)
    if (missing.length > 0 && missing.length < apns.length) {
      for (const name of missing) {
        ctx.addIssue({
          code: 'custom',
          path: [name],
          message: `is needed with ${apns.filter((n) => !missing.includes(n)).join(', ')} for push notifications`,
        })
      }
    }
    if (config.DATABASE_PASSWORD === undefined) return
    const issue = (message: string) => ctx.addIssue({ code: 'custom', path: ['DATABASE_PASSWORD'], message })
    if (!config.DATABASE_URL) issue('is the password of DATABASE_URL, which is not set')
    // (An unparsable DATABASE_URL has an issue of its own already.)
    else if (URL.canParse(config.DATABASE_URL) && new URL(config.DATABASE_URL).password) {
      issue('is set, and DATABASE_URL has a password too; keep one')
    }
  })

export type Config = z.infer<typeof configSchema>

export class ConfigError extends StartupError {
  override name = 'ConfigError'
}

/** A connection string with DATABASE_PASSWORD put in, escaped, unless it has a password of its own. */
function withPassword(connectionString: string | undefined, password: string | undefined): string | undefined {
  if (!connectionString || password === undefined) return connectionString
  const url = new URL(connectionString)
  if (url.password) return connectionString
  // The URL setter leaves `%` alone: encode it all, the driver decodes it.
  url.password = encodeURIComponent(password)
  return url.href
}

/** The PostgreSQL connection string, with DATABASE_PASSWORD put in; unset for the embedded database. */
export const databaseUrl = (config: Config): string | undefined =>
  withPassword(config.DATABASE_URL, config.DATABASE_PASSWORD)

/** Whether push notifications are on: APNs is configured (all of it, or the configuration is refused). */
export const pushConfigured = (config: Config): boolean => config.APNS_KEY_FILE !== undefined

/** Where event streams LISTEN, when not on DATABASE_URL's database. */
export const listenUrl = (config: Config): string | undefined =>
  withPassword(config.DATABASE_LISTEN_URL, config.DATABASE_PASSWORD)

/** Parses settings from an environment; throws ConfigError naming every bad variable. */
export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  // An empty variable means "unset", as in most shells' `FOO= cmd`.
  const present = Object.fromEntries(
    Object.entries(env).filter(([key, value]) => key in configSchema.shape && value !== ''),
  )
  const result = configSchema.safeParse(present)
  if (!result.success) {
    const problems = result.error.issues.map((issue) => `  ${issue.path.join('.')}: ${issue.message}`).join('\n')
    throw new ConfigError(`Invalid configuration:\n${problems}`)
  }
  return result.data
}
