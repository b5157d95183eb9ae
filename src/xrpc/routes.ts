import { jsonToLex, type Lexicons } from '@atproto/lexicon'
import { MethodNotImplementedError } from '@atproto/xrpc-server'
import type { FastifyBaseLogger, FastifyInstance, FastifyRequest } from 'fastify'
import type { Logger } from 'pino'
import type { AppContext } from '../context.js'
import type { Nsid } from '../lexicon/types/index.js'
import { toWireJson } from '../lexicon/wire.js'
import { accountTakenDown, invalidRequest, XRPCErrorWithHeaders } from './errors.js'
import { idempotencyPlugin } from './idempotency.js'
import { xrpcMethods, type XrpcMethod } from './lexicons.js'
import { assertAcceptableInput, parseJsonBody } from './input-boundary.js'
import { decodeQueryParams } from './params.js'
import type { HandlerContext, XrpcHandler, XrpcHandlers } from './types.js'

declare module 'fastify' {
  interface FastifyContextConfig {
    nsid?: string
  }
  interface FastifyRequest {
    /** Caller DID, set by the auth hook of every XRPC route. */
    caller: string
    xrpcParams: unknown
    xrpcInput: unknown
    /** What the handler's `reserve` step found, before the request's transaction. */
    xrpcReserved: unknown
  }
}

const JSON_TYPE = 'application/json; charset=utf-8'

function validationError(err: unknown): Error {
  return invalidRequest(undefined, err instanceof Error ? err.message : String(err))
}

function parseParams(lexicons: Lexicons, method: XrpcMethod, request: FastifyRequest) {
  const queryStart = request.url.indexOf('?')
  // Most procedures take no parameters and come without a query string: nothing to decode or check.
  if (queryStart === -1 && !method.def.parameters) return {}
  const query = new URLSearchParams(queryStart === -1 ? '' : request.url.slice(queryStart + 1))
  const decoded = decodeQueryParams(method.def.parameters, query)
  assertAcceptableInput(decoded)
  try {
    return lexicons.assertValidXrpcParams(method.nsid, decoded) ?? {}
  } catch (err) {
    throw validationError(err)
  }
}

function parseInput(lexicons: Lexicons, method: XrpcMethod, body: unknown) {
  if (method.def.type !== 'procedure' || !method.def.input) return undefined
  if (body === undefined || body === null) {
    throw invalidRequest(undefined, 'A JSON request body (Content-Type: application/json) is required')
  }
  assertAcceptableInput(body)
  try {
    return lexicons.assertValidXrpcInput(method.nsid, jsonToLex(body as never))
  } catch (err) {
    throw validationError(err)
  }
}

/**
 * Every later log line of the request names its caller. The request's logger
 * is its own (a child made for it), so pino's setBindings adds the binding in
 * place rather than making a second child logger per request.
 */
function bindCaller(request: FastifyRequest): void {
  const log = request.log as FastifyBaseLogger & Partial<Pick<Logger, 'setBindings'>>
  if (log.setBindings) log.setBindings({ caller: request.caller })
  else request.log = log.child({ caller: request.caller })
}

export interface XrpcRoutesOptions {
  ctx: AppContext
  handlers: XrpcHandlers
  /** Check every output against its lexicon (tests; a failure is a 500). */
  validateOutput: boolean
}

/** What handlers get of the app's context: they reach the database through their `db` alone (a keyed write's transaction, or the pool). */
export function handlerContext(ctx: AppContext): HandlerContext {
  const { config, lexicons, auth, metrics, events, push, blocks, takedowns } = ctx
  return { config, lexicons, auth, metrics, events, push, blocks, takedowns }
}

/**
 * One route per lexicon query (GET) and procedure (POST) at /xrpc/<nsid>:
 * service auth, then params and input validated against the lexicon, then
 * the handler (501 when there is none), then its output serialized.
 */
export async function xrpcRoutes(app: FastifyInstance, opts: XrpcRoutesOptions): Promise<void> {
  const { ctx, handlers, validateOutput } = opts
  const { db } = ctx
  const handlerCtx = handlerContext(ctx)
  // XRPC bodies are JSON: JSON sent as text/plain gets the same 415 as any
  // other content type, not a confusing "Input must be an object".
  app.removeContentTypeParser('text/plain')
  app.decorateRequest('caller', '')
  app.decorateRequest('xrpcParams', null)
  app.decorateRequest('xrpcInput', null)
  app.decorateRequest('xrpcReserved', null)
  app.removeContentTypeParser('application/json')
  app.addContentTypeParser('application/json', { parseAs: 'string' }, parseJsonBody)
  // Its hooks attach to the keyed routes as they are declared, after their own preHandlers (`reserve`).
  await app.register(idempotencyPlugin, { ctx })

  for (const method of xrpcMethods(ctx.lexicons)) {
    const { nsid } = method
    const url = `/xrpc/${nsid}`
    const httpMethod = method.def.type === 'query' ? 'GET' : 'POST'
    // The lexicons loaded are the ones the method map was generated from (a drift test holds them together).
    const handler = handlers[nsid as Nsid] as XrpcHandler | undefined
    if (handler && method.acceptsIdempotencyKey && !handler.keyedWrites) {
      throw new Error(`${nsid} accepts an idempotency key: its handler must say how keyed writes are recorded`)
    }

    const reserve = handler?.reserve
    app.route({
      method: httpMethod,
      url,
      config: { nsid, ...(method.acceptsIdempotencyKey && handler ? { keyedWrites: handler.keyedWrites } : {}) },
      // Before the idempotency plugin's claim, which it adds after the route's own preHandlers.
      ...(reserve && {
        preHandler: async (request: FastifyRequest) => {
          request.xrpcReserved = await reserve({
            params: request.xrpcParams,
            input: request.xrpcInput,
            caller: request.caller,
            db,
            ctx: handlerCtx,
          })
        },
      }),
      onRequest: async (request) => {
        request.caller = await ctx.auth(request.headers.authorization, nsid)
        bindCaller(request)
        if (ctx.takedowns.has(request.caller)) throw accountTakenDown(request.caller)
      },
      // Callback-style: an async hook would cost a promise and a tick per request for synchronous work.
      // A method without a handler answers 501 whatever it is sent: nothing is validated for it.
      ...(handler && {
        preValidation: (request: FastifyRequest, _reply: unknown, done: (err?: Error) => void) => {
          try {
            request.xrpcParams = parseParams(ctx.lexicons, method, request)
            request.xrpcInput = parseInput(ctx.lexicons, method, request.body)
          } catch (err) {
            done(err as Error)
            return
          }
          done()
        },
      }),
      // The answer goes out as the JSON text returned here: a keyed write's record stores those bytes.
      handler: async (request, reply) => {
        if (!handler) throw new MethodNotImplementedError(`${nsid} is not implemented`)
        const transaction = request.keyedTransaction
        const output = await handler({
          params: request.xrpcParams,
          input: request.xrpcInput,
          caller: request.caller,
          db: transaction?.db ?? db,
          keyed: request.keyedWrite ?? undefined,
          reserved: request.xrpcReserved,
          // Without a transaction held open, the writes are committed once the service returns.
          afterCommit: transaction ? transaction.afterCommit : (fn) => fn(),
          ctx: handlerCtx,
          log: request.log,
          request,
          reply,
        })
        if (reply.sent) return reply
        if (validateOutput) ctx.lexicons.assertValidXrpcOutput(nsid, output)
        reply.type(JSON_TYPE)
        return JSON.stringify(toWireJson(output) ?? {})
      },
    })

    app.route({
      method: httpMethod === 'GET' ? 'POST' : 'GET',
      url,
      handler: async () => {
        throw new XRPCErrorWithHeaders(405, `${nsid} is a ${method.def.type}; use ${httpMethod}`, 'InvalidRequest', {
          allow: httpMethod,
        })
      },
    })
  }
}
