import { jsonToLex, lexToJson } from '@atproto/lexicon'
import { queryString } from '../lexicon/wire.js'
import { XrpcClientError } from './errors.js'
import type { ProcedureNsid, Procedures, Queries, QueryNsid } from './methods.js'

/** Mints an ATProto service-auth JWT for one method (the token's `lxm`). */
export type TokenMinter = (nsid: string) => Promise<string>

/** JSON as it travels: binary fields are `{"$bytes": base64}`. */
export type JsonValue = string | number | boolean | null | JsonValue[] | JsonObject
export type JsonObject = { [key: string]: JsonValue }

export interface XrpcClientOptions {
  /** Where the service listens, such as `https://mls.example.com`. */
  serviceUrl: string
  token: TokenMinter
  /** Time allowed for one request, response body included. Default 30 s. */
  requestTimeoutMs?: number
  fetch?: typeof globalThis.fetch
}

const DEFAULT_TIMEOUT_MS = 30_000

/** A procedure input (with Uint8Array) in JSON form (with `$bytes`), ready to store or send. */
export const inputToJson = (input: object): JsonObject => lexToJson(input) as JsonObject

/** fetch says "fetch failed" and puts the reason (reset, refused, timeout) in its cause. */
function describeError(err: unknown): string {
  if (!(err instanceof Error)) return String(err)
  return err.cause === undefined ? err.message : `${err.message} (${describeError(err.cause)})`
}

/** The server's refusal, named as its XRPC error body says (when it has one). */
function httpError(nsid: string, response: Response, text: string): XrpcClientError {
  let fields: { error?: unknown; message?: unknown } = {}
  try {
    const parsed: unknown = JSON.parse(text)
    if (parsed !== null && typeof parsed === 'object') fields = parsed
  } catch {
    // Not an XRPC error body (a proxy's HTML page, say): the status still tells.
  }
  return new XrpcClientError({
    nsid,
    status: response.status,
    error: typeof fields.error === 'string' ? fields.error : 'UnknownError',
    message: typeof fields.message === 'string' ? fields.message : `${nsid} answered HTTP ${response.status}`,
    headers: response.headers,
  })
}

/**
 * One HTTP request per call, typed by the lexicons: no retries, no storage.
 * Every failure is an XrpcClientError.
 */
export class XrpcClient {
  private readonly baseUrl: string
  private readonly fetch: typeof globalThis.fetch
  private readonly timeoutMs: number

  constructor(private readonly opts: XrpcClientOptions) {
    this.baseUrl = opts.serviceUrl.replace(/\/+$/, '')
    this.fetch = opts.fetch ?? globalThis.fetch
    this.timeoutMs = opts.requestTimeoutMs ?? DEFAULT_TIMEOUT_MS
  }

  async query<N extends QueryNsid>(nsid: N, params: Queries[N]['params']): Promise<Queries[N]['output']> {
    const output = await this.send(nsid, `${nsid}${queryString(params)}`, { method: 'GET' })
    return jsonToLex(output) as Queries[N]['output']
  }

  async procedure<N extends ProcedureNsid>(nsid: N, input: Procedures[N]['input']): Promise<Procedures[N]['output']> {
    return this.procedureJson(nsid, inputToJson(input))
  }

  /** A procedure whose input is already in JSON form (a stored pending operation). */
  async procedureJson<N extends ProcedureNsid>(nsid: N, input: JsonObject): Promise<Procedures[N]['output']> {
    const output = await this.send(nsid, nsid, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(input),
    })
    return jsonToLex(output) as Procedures[N]['output']
  }

  private async send(nsid: string, path: string, init: RequestInit): Promise<JsonValue> {
    const token = await this.opts.token(nsid)
    let response: Response
    let text: string
    try {
      response = await this.fetch(`${this.baseUrl}/xrpc/${path}`, {
        ...init,
        headers: { ...init.headers, authorization: `Bearer ${token}` },
        signal: AbortSignal.timeout(this.timeoutMs),
      })
      // Reading the body can fail too: the connection may drop mid-response.
      text = await response.text()
    } catch (cause) {
      throw new XrpcClientError({
        nsid,
        status: 0,
        error: 'NetworkError',
        message: `${nsid}: ${describeError(cause)}`,
        cause,
      })
    }
    if (!response.ok) throw httpError(nsid, response, text)
    try {
      return text ? (JSON.parse(text) as JsonValue) : {}
    } catch (cause) {
      throw new XrpcClientError({
        nsid,
        status: 0,
        error: 'InvalidResponse',
        message: `${nsid}: the response body is not JSON`,
        headers: response.headers,
        cause,
      })
    }
  }
}
