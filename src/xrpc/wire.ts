import { lexToJson } from '@atproto/lexicon'

/**
 * A lexicon value as the JSON the server sends. Like `lexToJson`, except that
 * bytes become `{"$bytes": <standard base64 with padding>}`: atproto's encoder
 * drops the padding, and strict decoders such as Swift's
 * `Data(base64Encoded:)` reject unpadded input, while every atproto decoder
 * accepts padded base64.
 */
export function toWireJson(value: unknown): unknown {
  if (value instanceof Uint8Array) return { $bytes: Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64') }
  if (Array.isArray(value)) return value.map(toWireJson)
  if (value !== null && typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    return Object.fromEntries(Object.entries(value).map(([key, v]) => [key, toWireJson(v)]))
  }
  // Scalars, and anything else lexicons carry (CIDs) as atproto writes it.
  return lexToJson(value as never)
}
