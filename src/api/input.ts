import { invalidRequest } from '../xrpc/errors.js'
import { isCipherSuite, MlsDecodeError } from '../mls/index.js'
import { decodeBase64 } from '../services/util.js'

export function requireCipherSuite(suite: string): void {
  if (!isCipherSuite(suite)) {
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

/** What went wrong reading MLS bytes, as the named error of the field they came in. */
export function mlsInputError(err: unknown, name: string, field: string): unknown {
  return err instanceof MlsDecodeError ? invalidRequest(name, `${field}: ${err.message}`) : err
}
