import { invalidRequest } from '../xrpc/errors.js'
import { decodeBase64 } from '../services/util.js'

/** The cipher suites the lexicons name; MLS clients must agree on one of these. */
export const CIPHER_SUITES: ReadonlySet<string> = new Set([
  'MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519',
  'MLS_128_DHKEMP256_AES128GCM_SHA256_P256',
  'MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519',
  'MLS_256_DHKEMX448_AES256GCM_SHA512_Ed448',
  'MLS_256_DHKEMP521_AES256GCM_SHA512_P521',
  'MLS_256_DHKEMX448_CHACHA20POLY1305_SHA512_Ed448',
])

export function requireCipherSuite(suite: string): void {
  if (!CIPHER_SUITES.has(suite)) {
    throw invalidRequest('InvalidCipherSuite', `Unsupported cipher suite: ${suite.slice(0, 100)}`)
  }
}

/**
 * Decodes a base64 string field carrying MLS bytes, bounded in size.
 * Returns undefined when the field is absent.
 */
export function decodeBinaryField(
  value: string | undefined,
  field: string,
  maxBytes: number,
  errorName?: string,
): Uint8Array | undefined {
  if (value === undefined) return undefined
  // Base64 is 4 characters per 3 bytes: refuse oversized input before decoding it.
  if (Math.floor((value.length * 3) / 4) > maxBytes + 2) {
    throw invalidRequest(errorName, `${field} is larger than the ${maxBytes} bytes allowed`)
  }
  const bytes = decodeBase64(value)
  if (!bytes) throw invalidRequest(errorName, `${field} must be non-empty base64`)
  if (bytes.length > maxBytes) {
    throw invalidRequest(errorName, `${field} is larger than the ${maxBytes} bytes allowed`)
  }
  return bytes
}
