import type { FastifyBaseLogger, FastifyReply, FastifyRequest } from 'fastify'
import type { AppContext } from '../context.js'
import type { Db } from '../db/index.js'
import type { KeyedWrites } from '../idempotency/plugin.js'
import type { KeyedWrite } from '../idempotency/store.js'
import type { Methods, Nsid } from '../lexicon/types/index.js'

/** What handlers share; the database is theirs only through `db`. */
export type HandlerContext = Omit<AppContext, 'db' | 'pool'>

export interface HandlerInput<P, I> {
  /** Query parameters, decoded and validated against the lexicon (defaults applied). */
  params: P
  /** Request body, validated against the lexicon; `bytes` fields are Uint8Array. */
  input: I
  /** DID of the caller, from a verified service-auth token. */
  caller: string
  /**
   * Where this request reads and writes: the only database handle a handler
   * gets. For a keyed write recorded in a transaction it is that
   * transaction, which the idempotency plugin commits with the answer.
   */
  db: Db
  /**
   * A keyed write recorded in its own statement (`recordedIn: 'statement'`):
   * the handler has the service store this record with the write.
   */
  keyed: KeyedWrite | undefined
  /** What the handler's `prepare` found (undefined without one). */
  prepared: unknown
  /** Runs `fn` once the request's writes are committed (for a keyed write, with its answer). */
  afterCommit(fn: () => void): void
  ctx: HandlerContext
  log: FastifyBaseLogger
  request: FastifyRequest
  reply: FastifyReply
}

/**
 * One XRPC method. Returns the output (lexicon values: Uint8Array for bytes),
 * or nothing after taking over the reply itself (event streams).
 */
export type XrpcHandler<P = unknown, I = unknown, O = unknown> = ((req: HandlerInput<P, I>) => Promise<O>) &
  HandlerOptions<P, I, unknown>

/** What a handler's `prepare` gets: the request as validated, and the pool. */
export type PrepareInput<P, I> = Pick<HandlerInput<P, I>, 'params' | 'input' | 'caller' | 'db' | 'ctx'>

export interface HandlerOptions<P, I, R> {
  /** Required of methods whose input accepts `idempotencyKey`. */
  keyedWrites?: KeyedWrites<I>
  /**
   * Work on other shards than the request's transaction (issue 19: one shard
   * per transaction), done on the pool before that transaction opens and
   * before an idempotency key is claimed; the handler gets its result as
   * `prepared`. It runs again for a replayed request, so what it writes must
   * come out the same when repeated, and it refuses nothing that depends on
   * the database: it reports what it found, and the handler decides (a
   * replay is answered as before). It may refuse input that can never be
   * valid, as the handler would.
   */
  prepare?: (req: PrepareInput<P, I>) => Promise<R>
}

/** What the handler of `N` returns: its output, or nothing for an event stream, whose reply it writes itself. */
type Returns<N extends Nsid> = Methods[N]['encoding'] extends 'application/json' ? Methods[N]['output'] : void

/** The handler of method `N`, typed by the generated method map. */
export type Handler<N extends Nsid> = XrpcHandler<Methods[N]['params'], Methods[N]['input'], Returns<N>>

/** Handlers by NSID; a lexicon method without one answers 501. */
export type XrpcHandlers = { [N in Nsid]?: Handler<N> }

/**
 * The handler of method `nsid`, typed by it; a keyed method says how its
 * writes are recorded, and `prepared` is what its `prepare` returned.
 */
export const handler = <N extends Nsid, R = undefined>(
  _nsid: N,
  fn: (req: HandlerInput<Methods[N]['params'], Methods[N]['input']> & { prepared: NoInfer<R> }) => Promise<Returns<N>>,
  options: HandlerOptions<Methods[N]['params'], Methods[N]['input'], R> = {},
): Handler<N> => Object.assign(fn as Handler<N>, options)
