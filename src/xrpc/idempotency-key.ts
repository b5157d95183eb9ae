import { createHash } from 'node:crypto'
import { invalidRequest } from './errors.js'

const KEY_FORMAT = /^[\x20-\x7e]{1,255}$/

function checkFormat(key: string, source: string): string {
  if (!KEY_FORMAT.test(key)) {
    throw invalidRequest('InvalidIdempotencyKey', `${source} must be 1 to 255 printable ASCII characters`)
  }
  return key
}

/**
 * The header is a Structured Fields string in the IETF draft
 * (`Idempotency-Key: "abc"`); a bare token is accepted too.
 */
function fromHeader(header: string): string {
  const quoted = /^"((?:[^"\\]|\\["\\])*)"$/.exec(header)
  return quoted ? (quoted[1] as string).replace(/\\(["\\])/g, '$1') : header
}

/** The key of a request, from the body field or the Idempotency-Key header. */
export function requestIdempotencyKey(bodyKey: unknown, header: string | string[] | undefined): string | undefined {
  if (Array.isArray(header)) {
    throw invalidRequest('InvalidIdempotencyKey', 'Idempotency-Key header must be given once')
  }
  const fromBody = bodyKey === undefined ? undefined : checkFormat(String(bodyKey), 'idempotencyKey')
  const fromHead = header === undefined ? undefined : checkFormat(fromHeader(header), 'Idempotency-Key header')
  if (fromBody !== undefined && fromHead !== undefined && fromBody !== fromHead) {
    throw invalidRequest('InvalidIdempotencyKey', 'idempotencyKey in the body and the Idempotency-Key header differ')
  }
  return fromBody ?? fromHead
}

/** JSON with object keys sorted, so equal requests hash equally whatever their key order. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`
  }
  return JSON.stringify(value)
}

/** SHA-256 of the request body as sent, without the key itself. */
export function requestFingerprint(body: unknown): Buffer {
  const { idempotencyKey: _key, ...rest } = (body ?? {}) as Record<string, unknown>
  return createHash('sha256').update(canonicalJson(rest)).digest()
}

/** Identifies a record: the same key from another caller or method is another record. */
export function idempotencyScope(callerDid: string, nsid: string, key: string): Buffer {
  return createHash('sha256').update(`${callerDid}\n${nsid}\n${key}`).digest()
}

/** The key as logs may show it. */
export function keyForLogs(scope: Buffer): string {
  return scope.subarray(0, 8).toString('hex')
}
