import type { Lexicons } from '@atproto/lexicon'
import type pg from 'pg'
import type { Config } from './config.js'
import type { Db } from './db/schema.js'
import type { EventHub } from './events/hub.js'
import type { Metrics } from './metrics.js'
import type { TakenDown } from './services/accounts.js'
import type { BlockSettings } from './services/blocks.js'

/** Verifies a request's service-auth token for one method; answers the caller's DID (src/xrpc/auth.ts). */
export type AuthVerifier = (authorization: string | undefined, nsid: string) => Promise<string>

/** What handlers and workers share: configuration, the database, and the instruments. */
export interface AppContext {
  config: Config
  db: Db
  /** The pool under `db`, for the few places that drive a raw client (the idempotency claim). */
  pool: pg.Pool
  lexicons: Lexicons
  auth: AuthVerifier
  metrics: Metrics
  /** Fans new messages out to this instance's event streams. */
  events: EventHub
  /** Where Bluesky blocks come from, and what to do when they cannot be read. */
  blocks: BlockSettings
  /** The accounts an operator took down: their calls are refused. */
  takedowns: TakenDown
}
