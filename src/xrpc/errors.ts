import { STATUS_CODES } from 'node:http'
import type { Socket } from 'node:net'
import { ResponseType, XRPCError } from '@atproto/xrpc-server'
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { isQueryTimeout } from '../db/connection.js'
import { Refusal, type RefusalKind } from '../services/errors.js'

/**
 * Errors the lexicons declare keep their declared name; the HTTP status says
 * what kind of failure it is. Handlers raise client-visible errors with these
 * helpers; services raise a Refusal, which `toXrpcError` maps.
 */
export const invalidRequest = (name: string | undefined, message: string) =>
  new XRPCError(ResponseType.InvalidRequest, message, name)
export const forbidden = (name: string | undefined, message: string) =>
  new XRPCError(ResponseType.Forbidden, message, name)
export const gone = (name: string, message: string) => new XRPCError(410 as ResponseType, message, name)
const payloadTooLarge = (name: string, message: string) => new XRPCError(ResponseType.PayloadTooLarge, message, name)
export const unprocessable = (name: string, message: string) => new XRPCError(422 as ResponseType, message, name)
export const accountTakenDown = (did: string) =>
  forbidden(
    'AccountTakedown',
    `The account ${did} has been taken down by the operator of this server: its calls are refused`,
  )
const serviceUnavailable = (message: string) =>
  new XRPCError(ResponseType.NotEnoughResources, message, 'ServiceUnavailable')

/** XRPCError plus response headers (Retry-After, Allow). */
export class XRPCErrorWithHeaders extends XRPCError {
  constructor(
    status: number,
    message: string,
    name: string,
    readonly headers: Record<string, string>,
  ) {
    super(status as ResponseType, message, name)
  }
}

/**
 * The error name of a status without a more specific one: XRPC's own where it
 * has one (400 InvalidRequest), else the HTTP reason phrase without spaces
 * (431 RequestHeaderFieldsTooLarge), so that `error` is always a name.
 */
function errorNameForStatus(status: number): string {
  const xrpcName = (ResponseType as unknown as Record<number, string | undefined>)[status]
  return xrpcName ?? (STATUS_CODES[status] ?? 'Error').replace(/[^A-Za-z]/g, '')
}

const sqlState = (err: unknown): string | undefined => {
  const code = err instanceof Error ? (err as { code?: unknown }).code : undefined
  return typeof code === 'string' ? code : undefined
}

// SQLSTATE classes and node-level codes that mean "the database is not there"
// or "did not answer in time" (57014: statement_timeout cancelled the query).
const UNAVAILABLE_SQLSTATE = /^(08|57P0[1-3]|57014|53300)/
const UNAVAILABLE_NODE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE'])
// "timeout expired": a client of its own (a delegated write's function being made) that could not connect in time.
const UNAVAILABLE_MESSAGES =
  /Connection terminated|timeout exceeded when trying to connect|timeout expired|Client has encountered a connection error|Connection ended unexpectedly|Client was closed and is not queryable/

function isDatabaseUnavailable(err: unknown): boolean {
  if (!(err instanceof Error)) return false
  const code = sqlState(err)
  if (code !== undefined && (UNAVAILABLE_SQLSTATE.test(code) || UNAVAILABLE_NODE_CODES.has(code))) return true
  return isQueryTimeout(err) || UNAVAILABLE_MESSAGES.test(err.message)
}

/**
 * SQLSTATE class 22 (data exception: a value PostgreSQL cannot take, such as
 * a NUL in text or an out-of-range integer). Client values are checked before
 * any query (src/xrpc/input-boundary.ts), so one reaching the database is a
 * bug in that check; the client still only sent bad data.
 */
const isDataException = (err: unknown): boolean => sqlState(err)?.startsWith('22') ?? false

const REFUSAL_STATUS: Record<RefusalKind, ResponseType> = {
  invalid: ResponseType.InvalidRequest,
  forbidden: ResponseType.Forbidden,
  notFound: ResponseType.XRPCNotSupported,
  conflict: 409 as ResponseType,
  unavailable: ResponseType.NotEnoughResources,
}

/** A refusal on purpose (not a failure): a service's, or a 4xx the routing or a handler raised. */
export const isRefusal = (err: unknown): boolean =>
  err instanceof Refusal || (err instanceof XRPCError && err.statusCode >= 400 && err.statusCode < 500)

/** Maps anything thrown while serving a request to the XRPC error it answers with. */
export function toXrpcError(err: unknown): XRPCError {
  if (err instanceof XRPCError) return err
  if (err instanceof Refusal) return new XRPCError(REFUSAL_STATUS[err.kind], err.message, err.error)
  if (isDatabaseUnavailable(err)) {
    return serviceUnavailable('The database is unavailable; retry later')
  }
  if (isDataException(err)) {
    return invalidRequest(undefined, 'The request holds a value the server cannot store')
  }
  const fastifyErr = err as Partial<FastifyError>
  switch (fastifyErr.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return payloadTooLarge('PayloadTooLarge', 'Request body is larger than the server accepts')
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new XRPCError(
        ResponseType.UnsupportedMediaType,
        'Unsupported Content-Type; send application/json',
        'InvalidRequest',
      )
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return invalidRequest(undefined, fastifyErr.message ?? 'Invalid body')
  }
  const status = fastifyErr.statusCode
  if (typeof status === 'number' && status >= 400 && status < 500) {
    return new XRPCError(status as ResponseType, fastifyErr.message, errorNameForStatus(status))
  }
  return XRPCError.fromError(err)
}

/**
 * A refusal (`isRefusal`) as one line, `Name: message`, for an answer that
 * reports several (the items of a batch); undefined for anything else,
 * which fails the request as a whole.
 */
export function refusalLine(err: unknown): string | undefined {
  if (!isRefusal(err)) return undefined
  const { error, message } = toXrpcError(err).payload
  return `${error}: ${message}`
}

export function sendXrpcError(err: unknown, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  const xrpcErr = toXrpcError(err)
  const status = xrpcErr.statusCode
  if (status >= 500) {
    request.log.error({ err, status }, 'request failed')
  } else if (isDataException(err)) {
    request.log.error({ err, status }, 'client input reached the database unchecked (a bug in the input boundary)')
  } else {
    request.log.info({ status, error: xrpcErr.error, reason: xrpcErr.payload.message }, 'request refused')
  }
  if (xrpcErr instanceof XRPCErrorWithHeaders) reply.headers(xrpcErr.headers)
  return reply.status(status).send(xrpcErr.payload)
}

const CLIENT_ERRORS: Record<string, { status: number; message: string }> = {
  ERR_HTTP_REQUEST_TIMEOUT: { status: 408, message: 'The request was not received in time' },
  HPE_HEADER_OVERFLOW: {
    status: 431,
    message: 'The request line and headers are larger than the server accepts (for many params, use fewer per request)',
  },
}

/**
 * Answers HTTP that Node's parser refused before any route ran (oversized or
 * malformed headers, a request sent too slowly) with an XRPC error body, where
 * Fastify's default answers `{"error":"Bad Request",...}`. The client's fault,
 * so logged at debug. Fastify calls it with the instance as `this`.
 */
export function clientErrorHandler(
  this: FastifyInstance,
  err: Error & { code?: string; reason?: string },
  socket: Socket,
): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return
  const { status, message } = CLIENT_ERRORS[err.code ?? ''] ?? {
    status: 400,
    message: err.reason ? `Malformed HTTP request: ${err.reason}` : 'Malformed HTTP request',
  }
  this.log.debug({ err, status }, 'malformed HTTP request refused')
  if (socket.writable) {
    const body = JSON.stringify({ error: errorNameForStatus(status), message })
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    )
  }
  socket.destroy(err)
}
