import { queryString, type TestUser } from '../test/helpers/index.js'

/** Long enough for any run: the server keeps a verified token until it expires. */
const TOKEN_LIFETIME_SECONDS = 3600

/** Service-auth tokens, minted once per (user, method) and reused, as clients do. */
export class Tokens {
  private readonly minted = new Map<string, string>()

  async mint(users: TestUser[], nsids: string[]): Promise<void> {
    const exp = Math.floor(Date.now() / 1000) + TOKEN_LIFETIME_SECONDS
    for (const user of users) {
      for (const nsid of nsids) {
        const key = `${user.did} ${nsid}`
        if (!this.minted.has(key)) this.minted.set(key, await user.token(nsid, { exp }))
      }
    }
  }

  /** A token minted earlier (load generators build requests synchronously). */
  bearer(user: TestUser, nsid: string): string {
    const token = this.minted.get(`${user.did} ${nsid}`)
    if (!token) throw new Error(`no token minted for ${user.did} ${nsid}`)
    return `Bearer ${token}`
  }
}

export type Params = Record<string, string | number | string[]>

export interface HttpRequest {
  method: 'GET' | 'POST'
  path: string
  headers: Record<string, string>
  body?: string
}

export interface XrpcReply<T> {
  status: number
  body: T & { error?: string; message?: string }
  headers: Headers
}

/** XRPC calls to one server: queries with params (GET), procedures with a JSON input (POST). */
export class Xrpc {
  constructor(
    readonly url: string,
    readonly tokens: Tokens,
  ) {}

  request(user: TestUser, nsid: string, call: { params?: Params; input?: unknown }): HttpRequest {
    const query = queryString(call.params)
    const authorization = this.tokens.bearer(user, nsid)
    return call.input === undefined
      ? { method: 'GET', path: `/xrpc/${nsid}${query}`, headers: { authorization } }
      : {
          method: 'POST',
          path: `/xrpc/${nsid}${query}`,
          headers: { authorization, 'content-type': 'application/json' },
          body: JSON.stringify(call.input),
        }
  }

  async call<T = Record<string, unknown>>(
    user: TestUser,
    nsid: string,
    call: { params?: Params; input?: unknown } = {},
  ): Promise<XrpcReply<T>> {
    await this.tokens.mint([user], [nsid])
    const { method, path, headers, body } = this.request(user, nsid, call)
    const res = await fetch(`${this.url}${path}`, { method, headers, body })
    const text = await res.text()
    return { status: res.status, body: (text ? JSON.parse(text) : {}) as never, headers: res.headers }
  }

  /** A call that must succeed: its output, or an error naming what went wrong. */
  async ok<T = Record<string, unknown>>(
    user: TestUser,
    nsid: string,
    call: { params?: Params; input?: unknown } = {},
  ): Promise<T> {
    const reply = await this.call<T>(user, nsid, call)
    if (reply.status !== 200) {
      throw new Error(`${nsid}: HTTP ${reply.status} ${JSON.stringify(reply.body)}`)
    }
    return reply.body
  }
}
