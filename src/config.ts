import { z } from 'zod'

const MiB = 1024 * 1024

const int = (min: number, max = Number.MAX_SAFE_INTEGER) =>
  z.coerce.number().int().min(min).max(max)

const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'])
  .transform((v) => v === 'true' || v === '1' || v === 'yes')

/**
 * Every setting the server reads, with its environment variable name, default
 * and meaning. The README's configuration table is generated from this schema
 * (`npm run docs:config`), so descriptions here are the documentation.
 */
export const configSchema = z.object({
  PORT: int(0, 65535).default(3000).describe('TCP port the XRPC server listens on.'),
  HOST: z.string().min(1).default('0.0.0.0').describe('Interface the server binds to.'),
  DATABASE_URL: z
    .url({ protocol: /^postgres(ql)?$/ })
    .optional()
    .describe(
      'PostgreSQL connection string. When unset, `npm start` runs an embedded PostgreSQL with its data under `EMBEDDED_PG_DATA_DIR`.',
    ),
  DATABASE_POOL_SIZE: int(1, 500).default(20).describe('Maximum connections in the pool.'),
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
    .describe('DID of this service; service-auth tokens must name it as their `aud`.'),
  PLC_URL: z
    .url()
    .default('https://plc.directory')
    .describe('PLC directory used to resolve `did:plc` callers.'),
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
  MAX_KEY_PACKAGES_PER_USER: int(1)
    .default(200)
    .describe('Unconsumed key packages one user may keep on the server.'),
  MAX_MEMBERS_PER_CONVO: int(2)
    .default(1000)
    .describe('Largest number of current members in one conversation.'),
  KEY_PACKAGE_MAX_LIFETIME_DAYS: int(1)
    .default(90)
    .describe('Latest allowed end of a published key package: of its MLS lifetime and of `expires`, in days from now.'),
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
    .describe('How often the background workers (idempotency cleanup, Welcome sweep) run.'),
  WORKER_BATCH_SIZE: int(1, 100_000)
    .default(1_000)
    .describe('Rows one worker pass deletes or updates per statement.'),
  WORKER_BATCH_PAUSE_MS: int(0, 10_000)
    .default(25)
    .describe('Pause between two batches of one worker pass, so a large backlog does not crowd out requests.'),
  SHUTDOWN_TIMEOUT_MS: int(0)
    .default(25_000)
    .describe('How long shutdown waits for in-flight requests before closing anyway.'),
  REQUEST_TIMEOUT_MS: int(0)
    .default(30_000)
    .describe('Time a client has to send a whole request (0 disables).'),
  CONNECTION_TIMEOUT_MS: int(0)
    .default(120_000)
    .describe('A connection with no traffic for this long is closed (0 disables).'),
  SSE_KEEPALIVE_SECONDS: int(1)
    .default(15)
    .describe('How often an idle event stream gets a keep-alive comment.'),
  SSE_MAX_STREAMS_PER_CALLER: int(1)
    .default(5)
    .describe('Open event streams one caller may hold on an instance; more get 429.'),
  SSE_MAX_BUFFER_BYTES: int(1024)
    .default(1024 * 1024)
    .describe('Unsent bytes an event stream may queue before a slow client is disconnected.'),
  EVENT_POLL_INTERVAL_MS: int(10, 600_000)
    .default(2_000)
    .describe(
      'How often each instance checks for new messages without being notified: the bound on event delay if an instance stopped before announcing its write.',
    ),
  METRICS_TOKEN: z
    .string()
    .min(16, 'must be at least 16 characters')
    .optional()
    .describe(
      'Bearer token required by `GET /metrics`. When unset, /metrics answers loopback clients only.',
    ),
  RATE_LIMIT_PER_MINUTE: int(0)
    .default(0)
    .describe(
      'Requests one caller (DID) may make per minute before 429 `RateLimitExceeded`; 0 disables. Counted per instance.',
    ),
})

export type Config = z.infer<typeof configSchema>

export class ConfigError extends Error {
  override name = 'ConfigError'
}

/** Parses settings from an environment; throws ConfigError naming every bad variable. */
export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  // An empty variable means "unset", as in most shells' `FOO= cmd`.
  const present = Object.fromEntries(
    Object.entries(env).filter(([key, value]) => key in configSchema.shape && value !== ''),
  )
  const result = configSchema.safeParse(present)
  if (!result.success) {
    const problems = result.error.issues
      .map((issue) => `  ${issue.path.join('.')}: ${issue.message}`)
      .join('\n')
    throw new ConfigError(`Invalid configuration:\n${problems}`)
  }
  return result.data
}
