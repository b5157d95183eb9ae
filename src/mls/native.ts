/**
 * The crypto the server does, with Node's own (OpenSSL), plugged into
 * ts-mls in place of its own implementations (WebCrypto, and noble's pure
 * JavaScript), which stay the reference the tests hold these to:
 *
 * - signature checks, for the algorithms whose encodings Node shares with
 *   RFC 9420 (§5.1.1): Ed25519 and Ed448 (raw public keys, RFC 8032
 *   signatures), ECDSA on P-256 and P-521 (SEC1 points, DER signatures of the
 *   SHA-256 / SHA-512 digest); anything else stays with ts-mls's;
 * - digests (the KeyPackageRef of every key package), synchronous where
 *   WebCrypto's go through a promise each.
 */
import { createHash, createPublicKey, ECDH, verify, type KeyObject } from 'node:crypto'
import type { Hash, HashAlgorithm } from 'ts-mls/crypto/hash.js'
import type { Signature, SignatureAlgorithm } from 'ts-mls/crypto/signature.js'

const base64url = (bytes: Uint8Array) =>
  Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64url')

/** An Edwards-curve public key from its raw bytes. */
const edwardsKey = (crv: 'Ed25519' | 'Ed448') => (raw: Uint8Array) =>
  createPublicKey({ key: { kty: 'OKP', crv, x: base64url(raw) }, format: 'jwk' })

/** An ECDSA public key from its SEC1 point, compressed (as ts-mls writes them) or not (as RFC 9420 asks). */
const ecdsaKey = (crv: 'P-256' | 'P-521', curve: string, coordinateBytes: number) => (raw: Uint8Array) => {
  const point = raw[0] === 0x04 ? raw : (ECDH.convertKey(raw, curve, undefined, undefined, 'uncompressed') as Buffer)
  if (point.length !== 1 + 2 * coordinateBytes) throw new Error('not a point of the curve')
  const x = point.subarray(1, 1 + coordinateBytes)
  const y = point.subarray(1 + coordinateBytes)
  return createPublicKey({ key: { kty: 'EC', crv, x: base64url(x), y: base64url(y) }, format: 'jwk' })
}

const NATIVE: Partial<Record<SignatureAlgorithm, { digest: string | null; key: (raw: Uint8Array) => KeyObject }>> = {
  Ed25519: { digest: null, key: edwardsKey('Ed25519') },
  Ed448: { digest: null, key: edwardsKey('Ed448') },
  P256: { digest: 'sha256', key: ecdsaKey('P-256', 'prime256v1', 32) },
  P521: { digest: 'sha512', key: ecdsaKey('P-521', 'secp521r1', 66) },
}

const verifyOnly = () => Promise.reject(new Error('the server only verifies signatures'))
const digestOnly = () => Promise.reject(new Error('the server only computes digests'))

/**
 * Node's verification of `algorithm`'s signatures, or undefined where it has
 * none of its own here. A key or signature that is not well formed does not
 * verify.
 */
export function nativeSignature(algorithm: SignatureAlgorithm): Signature | undefined {
  const native = NATIVE[algorithm]
  if (!native) return undefined
  return {
    verify: (publicKey, message, signature) => {
      try {
        return Promise.resolve(verify(native.digest, message, native.key(publicKey), signature))
      } catch {
        return Promise.resolve(false)
      }
    },
    sign: verifyOnly,
    keygen: verifyOnly,
  }
}

const DIGESTS: Record<HashAlgorithm, string> = { 'SHA-256': 'sha256', 'SHA-384': 'sha384', 'SHA-512': 'sha512' }

/** Node's digest of `algorithm` (the server computes no MAC). */
export function nativeHash(algorithm: HashAlgorithm): Hash {
  const name = DIGESTS[algorithm]
  return {
    digest: (data) => Promise.resolve(new Uint8Array(createHash(name).update(data).digest())),
    mac: digestOnly,
    verifyMac: digestOnly,
  }
}
