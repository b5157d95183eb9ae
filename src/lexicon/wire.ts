import { lexToJson } from '@atproto/lexicon'

/**
 * How lexicon values travel as JSON, for the server, the client SDK, tests
 * and benchmarks alike (nothing here is server code): bytes as base64 or
 * `{"$bytes": base64}`, query parameters as a query string.
 */

/** Bytes in JSON. */
export interface BytesJson {
  $bytes: string
}

/**
 * Standard base64 with padding. atproto's encoder drops the padding, and
 * strict decoders such as Swift's `Data(base64Encoded:)` reject unpadded
 * input, while every atproto decoder accepts padded base64.
 */
export const encodeBase64 = (bytes: Uint8Array): string =>
  Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64')

/**
 * Binary fields the lexicons type as `string` (key packages, Welcomes,
 * commits) are base64. Both alphabets and optional padding are accepted;
 * anything else is refused rather than half-decoded.
 */
export function decodeBase64(value: string): Uint8Array | undefined {
  const trimmed = value.replace(/=+$/, '')
  if (trimmed.length === 0 || trimmed.length % 4 === 1 || !/^[A-Za-z0-9+/_-]+$/.test(trimmed)) {
    return undefined
  }
  return new Uint8Array(Buffer.from(trimmed, 'base64'))
}

/** Base64 from a source that writes it right (the server's answers, a test's own): decoded as it is. */
export const base64Bytes = (text: string): Uint8Array => new Uint8Array(Buffer.from(text, 'base64'))

export const bytesToJson = (bytes: Uint8Array): BytesJson => ({ $bytes: encodeBase64(bytes) })

/** The bytes of a `$bytes` value, padded or not. */
export const bytesFromJson = (json: BytesJson): Uint8Array => base64Bytes(json.$bytes)

/** A lexicon value as the JSON the server sends: like `lexToJson`, with bytes padded (see `encodeBase64`). */
export function toWireJson(value: unknown): unknown {
  if (value instanceof Uint8Array) return bytesToJson(value)
  if (Array.isArray(value)) return value.map(toWireJson)
  if (value !== null && typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    return Object.fromEntries(Object.entries(value).map(([key, v]) => [key, toWireJson(v)]))
  }
  // Scalars, and anything else lexicons carry (CIDs) as atproto writes it.
  return lexToJson(value as never)
}

/** Query parameters as XRPC takes them: `?a=1&b=x&b=y` (arrays repeat the name), or '' when there are none. */
export function queryString(params: object = {}): string {
  const search = new URLSearchParams()
  for (const [name, value] of Object.entries(params)) {
    if (value === undefined) continue
    for (const item of Array.isArray(value) ? value : [value]) search.append(name, String(item))
  }
  const text = search.toString()
  return text ? `?${text}` : ''
}
