import type { FastifyInstance } from 'fastify'
import { loadConfig, type Config } from '../../src/config.js'
import type { AppContext } from '../../src/context.js'
import { createDatabase, type Database } from '../../src/db/index.js'
import { buildServer } from '../../src/server.js'
import { loadLexicons } from '../../src/xrpc/lexicons.js'
import type { XrpcHandlers } from '../../src/xrpc/types.js'
import { createTestDatabase, type TestDatabase } from './database.js'
import { SERVICE_DID, type TestUser } from './users.js'

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

export interface TestApp {
  app: FastifyInstance
  ctx: AppContext
  database: Database
  testDb: TestDatabase
  url: string
  /** Calls an XRPC method over real HTTP as `user`. */
  call: XrpcCall
  close(): Promise<void>
}

export function testConfig(overrides: Record<string, string> = {}): Config {
  return loadConfig({ SERVICE_DID, LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent', ...overrides })
}

export function queryString(params: CallOptions['params'] = {}): string {
  const search = new URLSearchParams()
  for (const [name, value] of Object.entries(params)) {
    for (const v of Array.isArray(value) ? value : [value]) search.append(name, String(v))
  }
  const text = search.toString()
  return text ? `?${text}` : ''
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

/**
 * The real server on a fresh database of its own, listening on a loopback
 * port, with output validation on.
 */
export async function startTestApp(
  opts: {
    config?: Record<string, string>
    testDb?: TestDatabase
    logger?: unknown
    handlers?: XrpcHandlers
  } = {},
): Promise<TestApp> {
  const testDb = opts.testDb ?? (await createTestDatabase())
  const config = testConfig({ DATABASE_URL: testDb.url, ...opts.config })
  const database = createDatabase({ url: testDb.url, poolSize: 20 })
  const { app, ctx } = await buildServer({
    config,
    database,
    validateOutput: true,
    ...(opts.logger ? { logger: opts.logger as never } : {}),
    ...(opts.handlers ? { handlers: opts.handlers } : {}),
  })
  const url = await app.listen({ port: 0, host: '127.0.0.1' })

  const call = xrpcClient(url)

  return {
    app,
    ctx,
    database,
    testDb,
    url,
    call,
    async close() {
      await app.close()
      await database.close()
      if (!opts.testDb) await testDb.drop()
    },
  }
}
