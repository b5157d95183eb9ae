import { connect } from 'node:net'
import type { Methods, Nsid } from '../../src/lexicon/types/index.js'
import { queryString, type BytesJson } from '../../src/lexicon/wire.js'
import { loadLexicons } from '../../src/xrpc/lexicons.js'
import type { TestUser } from './users.js'

/**
 * A lexicon value as JSON on the wire, both ways: bytes (`Uint8Array` in
 * the method map) travel as `{"$bytes": base64}` (see toWireJson).
 */
export type WireJson<T> = T extends Uint8Array
  ? BytesJson
  : // Before objects: an open enum's `string & {}` is one.
    T extends string | number | boolean | null | undefined
    ? T
    : T extends ReadonlyArray<infer Item>
      ? Array<WireJson<Item>>
      : T extends object
        ? { [K in keyof T]: WireJson<T[K]> }
        : T

/** What a method takes, as JSON. */
export type InputOf<N extends Nsid> = WireJson<Methods[N]['input']>

/** What a method answers, as JSON. */
export type OutputOf<N extends Nsid> = WireJson<Methods[N]['output']>

interface RequestOptions {
  headers?: Record<string, string>
  /** Replaces the caller's valid token (null: no Authorization header). */
  token?: string | null
  method?: 'GET' | 'POST'
}

/** `{}`: what options are when none is given. */
type NoOptions = Record<never, never>

/** A call as the method's lexicon has it: its required params and its input must be there. */
export type CallOptions<N extends Nsid> = RequestOptions &
  (NoOptions extends Methods[N]['params'] ? { params?: Methods[N]['params'] } : { params: Methods[N]['params'] }) &
  (Methods[N]['input'] extends undefined ? { input?: undefined } : { input: InputOf<N> })

/** The options of a call, which may be left out when nothing in them is required. */
export type CallArgs<N extends Nsid> =
  NoOptions extends CallOptions<N> ? [opts?: CallOptions<N>] : [opts: CallOptions<N>]

/** A call the lexicon need not allow: params and input of any shape (a string input is sent as it is). */
export interface RawCallOptions extends RequestOptions {
  params?: Record<string, string | number | boolean | Array<string | number>>
  input?: unknown
}

export interface XrpcResponse<T = Record<string, unknown>> {
  status: number
  /** The output, or an XRPC error. */
  body: T & { error?: string; message?: string }
  headers: Headers
}

/** Calls a method with params and input its lexicon allows, and reads its output. */
export type XrpcCall = <N extends Nsid>(
  user: TestUser | null,
  nsid: N,
  ...opts: CallArgs<N>
) => Promise<XrpcResponse<OutputOf<N>>>

/** Calls any NSID with anything: only for tests that send what the lexicon refuses, on purpose. */
export interface RawXrpcCall {
  <N extends Nsid>(user: TestUser | null, nsid: N, opts?: RawCallOptions): Promise<XrpcResponse<OutputOf<N>>>
  (user: TestUser | null, nsid: string, opts?: RawCallOptions): Promise<XrpcResponse>
}

/** Calls to one server over real HTTP, as a given user. */
export interface XrpcClient {
  call: XrpcCall
  callRaw: RawXrpcCall
}

const lexicons = loadLexicons()

/** Calls XRPC methods of the server at `baseUrl` over real HTTP, as a given user. */
export function xrpcClient(baseUrl: string): XrpcClient {
  const send = async (
    user: TestUser | null,
    nsid: string,
    callOpts: RequestOptions & { params?: object; input?: unknown } = {},
  ) => {
    const lexMethod = lexicons.getDef(nsid)
    const method = callOpts.method ?? (lexMethod?.type === 'procedure' ? 'POST' : 'GET')
    const headers: Record<string, string> = { ...callOpts.headers }
    const token = callOpts.token === undefined ? await user?.token(nsid) : callOpts.token
    if (token) headers.authorization = `Bearer ${token}`
    let body: string | undefined
    if (callOpts.input !== undefined) {
      body = typeof callOpts.input === 'string' ? callOpts.input : JSON.stringify(callOpts.input)
      headers['content-type'] ??= 'application/json'
    }
    const res = await fetch(`${baseUrl}/xrpc/${nsid}${queryString(callOpts.params)}`, {
      method,
      headers,
      body,
    })
    const text = await res.text()
    return {
      status: res.status,
      body: (text ? JSON.parse(text) : undefined) as never,
      headers: res.headers,
    }
  }
  return { call: send, callRaw: send }
}

export interface RawResponse {
  status: number
  head: string
  body: string
}

/**
 * Sends `request` byte for byte over a new connection (fetch refuses to send
 * malformed HTTP) and reads the answer until the server closes it; requests
 * should say `Connection: close`. Of an event stream, which never ends, only
 * the head is read.
 */
export async function rawHttp(baseUrl: string, request: string | Buffer): Promise<RawResponse> {
  const { hostname, port } = new URL(baseUrl)
  const socket = connect(Number(port), hostname)
  const chunks: Buffer[] = []
  await new Promise<void>((resolve, reject) => {
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk)
      const text = Buffer.concat(chunks).toString()
      const headEnd = text.indexOf('\r\n\r\n')
      if (headEnd !== -1 && /\r\ncontent-type: text\/event-stream/i.test(text.slice(0, headEnd))) socket.destroy()
    })
    socket.on('error', (err) => (chunks.length ? resolve() : reject(err)))
    socket.on('close', () => resolve())
    socket.write(request)
  })
  const text = Buffer.concat(chunks).toString()
  const split = text.indexOf('\r\n\r\n')
  const head = split === -1 ? text : text.slice(0, split)
  return {
    status: Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0),
    head,
    body: split === -1 ? '' : text.slice(split + 4),
  }
}
