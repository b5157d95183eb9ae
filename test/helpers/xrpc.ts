import { connect } from 'node:net'
import { queryString } from '../../src/lexicon/wire.js'
import { loadLexicons } from '../../src/xrpc/lexicons.js'
import type { TestUser } from './users.js'

export interface CallOptions {
  params?: Record<string, string | number | boolean | Array<string | number>>
  input?: unknown
  headers?: Record<string, string>
  /** Replaces the caller's valid token (null: no Authorization header). */
  token?: string | null
  method?: 'GET' | 'POST'
}

export interface XrpcResponse<T = Record<string, unknown>> {
  status: number
  /** The output, or an XRPC error. */
  body: T & { error?: string; message?: string }
  headers: Headers
}

export type XrpcCall = <T = Record<string, unknown>>(
  user: TestUser | null,
  nsid: string,
  opts?: CallOptions,
) => Promise<XrpcResponse<T>>

const lexicons = loadLexicons()

/** Calls XRPC methods of the server at `baseUrl` over real HTTP, as a given user. */
export function xrpcClient(baseUrl: string): XrpcCall {
  return async (user, nsid, callOpts = {}) => {
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
