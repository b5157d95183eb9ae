import { createHash } from 'node:crypto'
import { jsonToLex, type LexObject } from '@atproto/lexicon'
import fc from 'fast-check'
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { captureLogs, NSID, rawHttp, startTestApp, SUITE, type TestApp, TestUser } from '../helpers/index.js'
import { handlers } from '../../src/api/index.js'
import { xrpcMethods, type XrpcMethod } from '../../src/xrpc/lexicons.js'

// Property-based: FUZZ_SEED=<n> replays a run (the seed is printed on
// failure), FUZZ_RUNS=<n> runs longer.
const logs = captureLogs('warn')
let t: TestApp
let alice: TestUser
let bob: TestUser
let carol: TestUser
let convoId: string
let messageId: string

beforeAll(async () => {
  t = await startTestApp({ config: { BODY_LIMIT_BYTES: '65536' }, logger: logs.logger })
  alice = await TestUser.create()
  bob = await TestUser.create()
  carol = await TestUser.create()
  const convo = await t.seed.createConvo(alice, [bob])
  convoId = convo.id
  messageId = (await t.seed.sendMessage(alice, convoId)).body.messageId
  await t.seed.publishKeyPackage(bob)
})
afterAll(async () => {
  await t?.close()
})

async function tableCounts(): Promise<string> {
  const { rows } = await sql<{ counts: string }>`SELECT concat_ws(',',
    (SELECT count(*) FROM convo), (SELECT count(*) FROM member), (SELECT count(*) FILTER (WHERE left_at IS NULL) FROM member),
    (SELECT count(*) FROM message), (SELECT count(*) FROM commit), (SELECT count(*) FILTER (WHERE consumed_at IS NULL) FROM key_package),
    (SELECT count(*) FROM key_package), (SELECT string_agg(state, '' ORDER BY convo_id, recipient_did) FROM welcome_delivery),
    (SELECT count(*) FROM idempotency_key), (SELECT max(epoch) FROM convo)) AS counts`.execute(t.ctx.db)
  return rows[0]!.counts
}

/** JSON written as is: numbers JSON.stringify cannot produce (2^64), nesting deeper than it recurses. */
class RawJson {
  constructor(readonly text: string) {}

  /** How counterexamples show it: deep JSON would fill the screen. */
  [fc.toStringMethod](): string {
    return this.text.length > 60 ? `raw(${this.text.slice(0, 30)}…${this.text.length} chars)` : `raw(${this.text})`
  }
}

function jsonText(value: unknown): string {
  if (value instanceof RawJson) return value.text
  if (Array.isArray(value)) return `[${value.map(jsonText).join(',')}]`
  if (value !== null && typeof value === 'object') {
    return `{${Object.entries(value)
      .map(([k, v]) => `${JSON.stringify(k)}:${jsonText(v)}`)
      .join(',')}}`
  }
  return JSON.stringify(value) ?? 'null'
}

/** A query param's text: strings as they are, anything else as JSON. */
const paramText = (value: unknown) => (typeof value === 'string' ? value : jsonText(value))

// Strings over all of Unicode, and over all UTF-16 code units (fast-check's
// full-Unicode strings never hold a lone surrogate), biased to the characters
// PostgreSQL or JSON choke on.
const hostileChar = fc.constantFrom(
  '\u0000',
  '\ud800',
  '\udfff',
  '\ud83d',
  '\ufffe',
  '\u202e',
  '\r\n',
  "'",
  '\\',
  '%00',
)
const anyString = fc.oneof(
  fc.string(),
  fc.string({ unit: 'binary' }),
  fc.string({ unit: fc.integer({ min: 0, max: 0xffff }).map((unit) => String.fromCharCode(unit)) }),
  fc.array(fc.oneof(hostileChar, fc.string({ maxLength: 3 })), { maxLength: 5 }).map((parts) => parts.join('')),
  fc.constantFrom('', "'; DROP TABLE convo;--", 'did:plc:abc'),
)
// Numbers over the whole float range, and integers past every column and 2^53.
const anyNumber = fc.oneof(
  fc.integer(),
  { weight: 2, arbitrary: fc.double() },
  { weight: 2, arbitrary: fc.bigInt({ min: -(2n ** 70n), max: 2n ** 80n }).map((n) => new RawJson(n.toString())) },
  fc.constantFrom(2 ** 53, -(2 ** 53), 1e300, -1e300, 5e-324),
  fc
    .constantFrom('9223372036854775808', '9007199254740993', '-9223372036854775809', '1e400')
    .map((n) => new RawJson(n)),
)
// Deep (past any stack) and wide JSON.
const deepJson = fc
  .tuple(fc.integer({ min: 30, max: 10_000 }), fc.boolean())
  .map(
    ([depth, arrays]) =>
      new RawJson(
        arrays ? `${'['.repeat(depth)}${']'.repeat(depth)}` : `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`,
      ),
  )
const wideJson = fc
  .tuple(fc.integer({ min: 100, max: 5_000 }), fc.boolean())
  .map(
    ([width, arrays]) =>
      new RawJson(
        arrays
          ? `[${Array(width).fill('0').join(',')}]`
          : `{${Array.from({ length: width }, (_, i) => `"k${i}":${i}`).join(',')}}`,
      ),
  )

/** Values of every JSON shape, biased towards the ones the server has to tell apart. */
const jsonValue = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    fc.constantFrom(null, true, false, 0, -1, 1.5, { $bytes: 'AAAA' }, { $bytes: '%%%' }),
    anyString,
    anyNumber,
    deepJson,
    wideJson,
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(anyString, tie('value'), { maxKeys: 4 }),
  ),
})).value

type Properties = Record<string, { type: string; ref?: string }>

/** A method's params and input fields. */
function properties(method: XrpcMethod): Properties {
  const def = method.def
  const schema = def.type === 'procedure' ? def.input?.schema : undefined
  return { ...def.parameters?.properties, ...(schema?.type === 'object' ? schema.properties : {}) } as Properties
}

/** A method's fields, objects it refers to included (`metadata.name`). */
function fieldPaths(method: XrpcMethod): string[][] {
  return Object.entries(properties(method)).flatMap(([name, prop]) => {
    if (prop.type !== 'ref') return [[name]]
    const target = t.ctx.lexicons.getDef(`${method.nsid}${prop.ref}`) as LexObject | undefined
    return [[name], ...Object.keys(target?.properties ?? {}).map((inner) => [name, inner])]
  })
}

/** A request body or params the method accepts, before hostile changes. */
function validSeed(method: XrpcMethod, caller: TestUser, nonce: number): Record<string, unknown> {
  const hex = createHash('sha256').update(String(nonce)).digest('hex')
  const byName: Record<string, unknown> = {
    convoId,
    senderDid: caller.did,
    // Not a member: a fuzz run never empties the conversation the others use.
    targetDid: carol.did,
    sinceMessage: messageId,
    cipherSuite: SUITE,
    groupId: hex.slice(0, 32),
    idempotencyKey: `fuzz-${hex.slice(0, 12)}`,
    keyPackage: Buffer.from(hex).toString('base64'),
    welcomeMessage: Buffer.from(hex).toString('base64'),
    commit: Buffer.from(hex).toString('base64'),
    expires: new Date(Date.now() + 86_400_000).toISOString(),
    embedUri: 'https://example.com/a',
    limit: 10,
    metadata: { name: 'fuzz' },
    // The client-era fields.
    msgId: hex.slice(0, 26).toUpperCase(),
    paddedSize: 512,
    delivery: 'persistent',
    sinceSeq: 0,
    keyPackageHashes: [],
    did: caller.did,
  }
  const byType: Record<string, unknown> = {
    string: 'x',
    integer: 0,
    boolean: false,
    bytes: { $bytes: 'AQID' },
    array: [bob.did],
  }
  return Object.fromEntries(
    Object.entries(properties(method)).map(([name, prop]) => [name, name in byName ? byName[name] : byType[prop.type]]),
  )
}

/** Sets `path` in `target` as an own property, even `__proto__`. */
function setField(target: Record<string, unknown>, path: string[], value: unknown): void {
  const [head, ...rest] = path as [string, ...string[]]
  let next = value
  if (rest.length) {
    const inner = target[head]
    const object: Record<string, unknown> =
      inner !== null && typeof inner === 'object' && !Array.isArray(inner) ? { ...inner } : {}
    setField(object, rest, value)
    next = object
  }
  Object.defineProperty(target, head, { value: next, enumerable: true, configurable: true, writable: true })
}

// A valid value made hostile in kind: a character a string must not hold,
// a number past what an integer field may be.
const corruption = fc.record({
  kind: fc.constant('corrupt' as const),
  char: hostileChar,
  at: fc.nat(),
  number: anyNumber,
})

/** `current` with the hostile change a value of its kind can take. */
function corrupt(current: unknown, change: { char: string; at: number; number: unknown }): unknown {
  if (typeof current === 'number') return change.number
  if (typeof current !== 'string') return change.char
  const at = change.at % (current.length + 1)
  return current.slice(0, at) + change.char + current.slice(at)
}

// Header lines a client may send, well formed or not.
const hostileHeader = fc.oneof(
  fc.constantFrom(
    'X-Control: a\u0001b',
    'X-Nul: a\u0000b',
    'Bad Header: x',
    'Content-Length: -1',
    'Content-Length: 5\r\nContent-Length: 6',
    'Transfer-Encoding: chunked',
    `X-Big: ${'a'.repeat(20_000)}`,
    'Authorization: Bearer a\u0000b',
    'Idempotency-Key: "\u00ff"',
    'Content-Type: application/json; charset=utf-16',
    'X-Request-Id: \u00e9\u0000',
  ),
  anyString.map((value) => `X-Fuzz: ${value}`),
)

type Auth = 'valid' | 'garbage' | 'none' | 'other-method' | 'ten-years' | 'no-iat'

/** How a request is sent, apart from its fields. */
interface Envelope {
  body: 'fields' | 'raw-garbage' | 'array' | 'none' | RawJson
  contentType: string
  /** Each query param given this many times. */
  repeat: number
  header: string | null
  auth: Auth
}

const WELL_FORMED: Envelope = {
  body: 'fields',
  contentType: 'application/json',
  repeat: 1,
  header: null,
  auth: 'valid',
}

// Each dimension is mostly well formed, so that what is hostile in one
// reaches as deep as it can: validation, services, SQL.
const envelope = fc.record<Envelope>({
  body: fc.oneof(
    { weight: 12, arbitrary: fc.constant('fields' as const) },
    fc.constantFrom('raw-garbage' as const, 'array' as const, 'none' as const),
    deepJson,
  ),
  contentType: fc.oneof(
    { weight: 8, arbitrary: fc.constant('application/json') },
    fc.constantFrom('application/json; charset=utf-8', 'text/plain', 'application/x-www-form-urlencoded'),
  ),
  repeat: fc.oneof({ weight: 12, arbitrary: fc.constant(1) }, fc.integer({ min: 2, max: 4 }), fc.constant(10_000)),
  header: fc.oneof({ weight: 6, arbitrary: fc.constant(null) }, hostileHeader),
  auth: fc.oneof(
    { weight: 12, arbitrary: fc.constant('valid' as const) },
    fc.constantFrom(
      'garbage' as const,
      'none' as const,
      'other-method' as const,
      'ten-years' as const,
      'no-iat' as const,
    ),
  ),
})

// Signing (and the server verifying) a token per request would be most of a
// run's time; tokens are made once per caller, method and kind, for longer
// than a run lasts.
const tokens = new Map<string, Promise<string | undefined>>()

function tokenFor(user: TestUser, method: XrpcMethod, auth: Auth): Promise<string | undefined> {
  const key = `${user.did} ${method.nsid} ${auth}`
  if (!tokens.has(key)) tokens.set(key, makeToken(user, method, auth))
  return tokens.get(key)!
}

async function makeToken(user: TestUser, method: XrpcMethod, auth: Auth): Promise<string | undefined> {
  const now = Math.floor(Date.now() / 1000)
  switch (auth) {
    case 'none':
      return undefined
    case 'garbage':
      return 'x.y.z'
    case 'other-method':
      return user.token(method.def.type === 'query' ? NSID.sendMessage : NSID.getEpoch, { exp: now + 1800 })
    case 'ten-years':
      return user.token(method.nsid, { exp: now + 10 * 365 * 86_400 })
    case 'no-iat':
      return user.token(method.nsid, { iat: null })
    case 'valid':
      return user.token(method.nsid, { exp: now + 1800 })
  }
}

function requestTarget(method: XrpcMethod, values: Record<string, unknown>, repeat: number): string {
  const target = `/xrpc/${method.nsid}`
  if (method.def.type !== 'query') return target
  const search = new URLSearchParams()
  // Far past the 16 KiB Node reads, and no further: 10,000 copies of a wide value would be gigabytes.
  let length = 0
  for (const [name, value] of Object.entries(values)) {
    for (const item of Array.isArray(value) ? value : [value]) {
      const text = paramText(item)
      for (let i = 0; i < repeat && length < 64 * 1024; i++, length += name.length + text.length)
        search.append(name, text)
    }
  }
  return search.size ? `${target}?${search}` : target
}

const XRPC_NAME = /^[A-Za-z][A-Za-z0-9]*$/

/**
 * Sends `values` to `method` as `user`, wrapped as `envelope` says, and checks
 * what every answer owes a hostile client: a valid output, or a 4xx XRPC
 * error (with the status the envelope calls for) that changed nothing; never
 * a 5xx, never a line logged at error.
 */
async function sendAndCheck(method: XrpcMethod, user: TestUser, values: Record<string, unknown>, envelope: Envelope) {
  const isQuery = method.def.type === 'query'
  const token = await tokenFor(user, method, envelope.auth)
  const { body: bodyKind } = envelope
  const body =
    isQuery || bodyKind === 'none'
      ? ''
      : bodyKind === 'fields'
        ? jsonText(values)
        : bodyKind === 'array'
          ? jsonText([values])
          : bodyKind === 'raw-garbage'
            ? '{"convoId": [1,'
            : bodyKind.text
  const bodyBytes = Buffer.from(body)
  const head = [
    `${isQuery ? 'GET' : 'POST'} ${requestTarget(method, values, envelope.repeat)} HTTP/1.1`,
    'Host: localhost',
    'Connection: close',
    ...(token ? [`Authorization: Bearer ${token}`] : []),
    ...(!isQuery && bodyKind !== 'none'
      ? [`Content-Type: ${envelope.contentType}`, `Content-Length: ${bodyBytes.length}`]
      : []),
    ...(envelope.header !== null ? [envelope.header] : []),
  ]
  const headText = `${head.join('\r\n')}\r\n\r\n`

  const before = await tableCounts()
  logs.clear()
  const res = await rawHttp(t.url, Buffer.concat([Buffer.from(headText), bodyBytes]))
  const context = `${method.nsid} ${res.status} ${res.body.slice(0, 300)} <- ${head.join(' | ').slice(0, 600)} ${body.slice(0, 300)}`
  expect(res.status, context).toBeGreaterThanOrEqual(200)
  expect(res.status, context).toBeLessThan(500)
  expect(
    logs.lines.filter((line) => Number(line.level) >= 50),
    context,
  ).toEqual([])
  // Node reads at most 16 KiB of request line and headers (with a margin
  // here: where exactly it starts counting is not the point).
  const headBytes = Buffer.byteLength(headText)
  if (headBytes > 17 * 1024) {
    expect(res.status, context).toBe(431)
  } else if (headBytes < 15 * 1024 && envelope.header === null && token !== undefined && envelope.auth !== 'valid') {
    // Tokens for another method, or breaking the lifetime policy, are refused before anything else.
    expect(res.status, context).toBe(401)
  }
  if (method.nsid === NSID.streamConvoEvents && res.status === 200) return
  const json = JSON.parse(res.body) as Record<string, unknown>
  if (res.status >= 400) {
    expect(json, context).toEqual({ error: expect.stringMatching(XRPC_NAME), message: expect.any(String) })
    expect(await tableCounts(), context).toBe(before)
  } else {
    expect(() => t.ctx.lexicons.assertValidXrpcOutput(method.nsid, jsonToLex(json as never)), context).not.toThrow()
  }
}

type Change =
  | { kind: 'corrupt'; char: string; at: number; number: unknown }
  | { kind: 'replace'; value: unknown }
  | { kind: 'delete' }

function applyChange(values: Record<string, unknown>, path: string[], change: Change): void {
  if (change.kind === 'delete') {
    delete values[path[0]!]
    return
  }
  const current = path.reduce<unknown>((v, key) => (v as Record<string, unknown> | undefined)?.[key], values)
  setField(values, path, change.kind === 'replace' ? change.value : corrupt(current, change))
}

/** The methods this server implements (the others answer 501 to anything: test/xrpc/foundation.test.ts). */
const implemented = () => xrpcMethods(t.ctx.lexicons).filter((method) => Object.hasOwn(handlers, method.nsid))

const runs = (count: number) => ({
  numRuns: Number(process.env.FUZZ_RUNS ?? count),
  seed: Number(process.env.FUZZ_SEED ?? Date.now() % 2 ** 31),
  endOnFailure: true,
})

describe('hostile input', () => {
  it('one hostile field (any Unicode, NUL, lone surrogates, any number, deep or wide JSON) in an otherwise valid request, for every field of every endpoint: a 4xx XRPC error or a valid output, never a 5xx or an error log', async () => {
    const fields = implemented().flatMap((method) => fieldPaths(method).map((path) => ({ method, path })))
    await fc.assert(
      fc.asyncProperty(
        fc.nat(),
        fc.nat(),
        fc.oneof(
          { weight: 3, arbitrary: corruption },
          jsonValue.map((value) => ({ kind: 'replace' as const, value })),
        ),
        async (fieldIndex, nonce, change) => {
          const { method, path } = fields[fieldIndex % fields.length]!
          const user = fieldIndex % 2 ? alice : bob
          const values = validSeed(method, user, nonce)
          applyChange(values, path, change)
          await sendAndCheck(method, user, values, WELL_FORMED)
        },
      ),
      runs(300),
    )
  }, 180_000)

  it('hostile requests of every shape (headers, tokens, repeated params, raw bodies, unknown fields, __proto__) to every endpoint: a 4xx XRPC error or a valid output, never a 5xx or an error log, and refused requests change nothing', async () => {
    const methods = implemented()
    const mutation = fc.record({
      field: fc.oneof(
        { weight: 4, arbitrary: fc.nat() },
        fc.constantFrom('__proto__', 'constructor', ''),
        fc.string({ maxLength: 8 }),
      ),
      change: fc.oneof(
        corruption,
        { weight: 2, arbitrary: jsonValue.map((value): Change => ({ kind: 'replace', value })) },
        fc.constant<Change>({ kind: 'delete' }),
      ),
    })
    await fc.assert(
      fc.asyncProperty(
        fc.nat(),
        fc.nat(),
        fc.array(mutation, { maxLength: 3 }),
        envelope,
        async (methodIndex, nonce, mutations, shape) => {
          const method = methods[methodIndex % methods.length]!
          const user = methodIndex % 2 ? alice : bob
          const paths = fieldPaths(method)
          const values = validSeed(method, user, nonce)
          for (const { field, change } of mutations) {
            // A method without fields (getRequestCount, optOut, listDevices) gets the unknown field the number names.
            const path = typeof field !== 'number' ? [field] : (paths[field % paths.length] ?? [`field${field}`])
            applyChange(values, path, change)
          }
          await sendAndCheck(method, user, values, shape)
        },
      ),
      runs(300),
    )
  }, 180_000)
})
