import type { FastifyBaseLogger, FastifyReply, FastifyRequest } from 'fastify'
import type { AppContext } from '../context.js'
import type { Db } from '../db/schema.js'
import type { KeyedWrite } from '../idempotency/statement.js'
import type { Methods, Nsid } from '../lexicon/types/index.js'
import type { KeyedWrites } from './idempotency.js'

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
  /** What the handler's `reserve` step found (undefined without one). */
  reserved: unknown
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

/** What a handler's `reserve` step gets: the request as validated, and the pool. */
export type ReserveInput<P, I> = Pick<HandlerInput<P, I>, 'params' | 'input' | 'caller' | 'db' | 'ctx'>

export interface HandlerOptions<P, I, R> {
  /** Required of methods whose input accepts `idempotencyKey`. */
  keyedWrites?: KeyedWrites<I>
  /**
   * Writes on other shards than the request's transaction (one shard per
   * transaction), made on the pool before that transaction opens and before
   * an idempotency key is claimed; the handler gets the result as
   * `reserved`. A reservation: it runs again for a replayed request, so what
   * it writes must come out the same when repeated, and it refuses nothing
   * that depends on the database: it reports what it found, and the handler
   * decides (a replay is answered as before). It may refuse input that can
   * never be valid, as the handler would.
   */
  reserve?: (req: ReserveInput<P, I>) => Promise<R>
}

/** What the handler of `N` returns: its output, or nothing for an event stream, whose reply it writes itself. */
type Returns<N extends Nsid> = Methods[N]['encoding'] extends 'application/json' ? Methods[N]['output'] : void

/** The handler of method `N`, typed by the generated method map. */
export type Handler<N extends Nsid> = XrpcHandler<Methods[N]['params'], Methods[N]['input'], Returns<N>>

/** Handlers by NSID; a lexicon method without one answers 501. */
export type XrpcHandlers = { [N in Nsid]?: Handler<N> }

type HandlerFn<N extends Nsid, R> = (
  req: HandlerInput<Methods[N]['params'], Methods[N]['input']> & { reserved: R },
) => Promise<Returns<N>>

/**
 * The handler of method `nsid`, typed by it; with options first, a keyed
 * method says how its writes are recorded, and `reserved` is what its
 * `reserve` step returned (its type inferred from there).
 */
export function handler<N extends Nsid>(nsid: N, fn: HandlerFn<N, undefined>): Handler<N>
export function handler<N extends Nsid, R = undefined>(
  nsid: N,
  options: HandlerOptions<Methods[N]['params'], Methods[N]['input'], R>,
  fn: HandlerFn<N, R>,
): Handler<N>
export function handler<N extends Nsid, R>(
  _nsid: N,
  optionsOrFn: HandlerOptions<Methods[N]['params'], Methods[N]['input'], R> | HandlerFn<N, R>,
  fn?: HandlerFn<N, R>,
): Handler<N> {
  return typeof optionsOrFn === 'function'
    ? (optionsOrFn as Handler<N>)
    : Object.assign(fn as unknown as Handler<N>, optionsOrFn)
}
