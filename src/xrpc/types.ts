import type { FastifyBaseLogger, FastifyReply, FastifyRequest } from 'fastify'
import type { AppContext } from '../context.js'
import type { Db } from '../db/index.js'

export interface HandlerInput<P, I> {
  /** Query parameters, decoded and validated against the lexicon (defaults applied). */
  params: P
  /** Request body, validated against the lexicon; `bytes` fields are Uint8Array. */
  input: I
  /** DID of the caller, from a verified service-auth token. */
  caller: string
  /**
   * Where this request reads and writes. For an idempotent write it is the
   * transaction that will also store the response, so both commit together.
   */
  db: Db
  /** Runs `fn` once the request's writes are committed (for an idempotent write, with its response). */
  afterCommit(fn: () => void): void
  ctx: AppContext
  log: FastifyBaseLogger
  request: FastifyRequest
  reply: FastifyReply
}

/**
 * One XRPC method. Returns the output (lexicon values: Uint8Array for bytes),
 * or nothing after taking over the reply itself (event streams).
 */
export type XrpcHandler<P = unknown, I = unknown, O = unknown> = (
  req: HandlerInput<P, I>,
) => Promise<O>

export type XrpcHandlers = Record<string, XrpcHandler<never, never, unknown>>

/** Types a handler against its generated lexicon types. */
export const xrpcHandler = <P, I, O>(fn: XrpcHandler<P, I, O>): XrpcHandler<P, I, O> => fn
