import { randomBytes } from 'node:crypto'
import { p256, p521 } from '@noble/curves/nist.js'
import { getCiphersuiteFromName, type KeyPackage } from 'ts-mls'
import { makeHashImpl } from 'ts-mls/crypto/implementation/default/makeHashImpl.js'
import { makeNobleSignatureImpl } from 'ts-mls/crypto/implementation/default/makeNobleSignatureImpl.js'
import type { SignatureAlgorithm } from 'ts-mls/crypto/signature.js'
import { signKeyPackage, verifyKeyPackage } from 'ts-mls/keyPackage.js'
import { describe, expect, it } from 'vitest'
import { CIPHER_SUITES } from '../../src/mls/index.js'
import { nativeHash, nativeSignature } from '../../src/mls/native.js'
import { newKeyPackage, suiteImpl } from '../helpers/index.js'

/**
 * Node's signature checks (src/mls/native.ts) answer as ts-mls's own
 * (the reference: WebCrypto for Ed25519, noble for the rest) on real key
 * packages of every suite the server takes: valid ones, and forged ones of
 * every kind a forger has at hand.
 */
const algorithmOf = (suite: (typeof CIPHER_SUITES)[number]) => getCiphersuiteFromName(suite).signature

/** Whether the package verifies, by the reference and by Node: they must agree. */
async function verdict(algorithm: SignatureAlgorithm, kp: KeyPackage): Promise<boolean> {
  const native = nativeSignature(algorithm)
  if (!native) throw new Error(`no native signature check for ${algorithm}`)
  const reference = await verifyKeyPackage(kp, await makeNobleSignatureImpl(algorithm)).catch(() => false)
  expect(await verifyKeyPackage(kp, native)).toBe(reference)
  return reference
}

const flipped = (bytes: Uint8Array, at: number) => {
  const copy = Uint8Array.from(bytes)
  copy[at]! ^= 1
  return copy
}

describe.each(CIPHER_SUITES)('key package signatures of %s', (suite) => {
  it('agree on valid packages and on forged ones', async () => {
    const verdictOf = (kp: KeyPackage) => verdict(algorithmOf(suite), kp)
    const cs = await suiteImpl(suite)
    const made = await newKeyPackage('did:plc:signer', { suite })
    const other = await newKeyPackage('did:plc:other', { suite })
    const kp = made.publicPackage
    expect(await verdictOf(kp)).toBe(true)
    expect(await verdictOf(other.publicPackage)).toBe(true)
    // Forged: a bit of the signature flipped (first and last byte), the signature of another package,
    // the signed content changed, another key in the leaf, a signature by another key, junk.
    expect(await verdictOf({ ...kp, signature: flipped(kp.signature, 0) })).toBe(false)
    expect(await verdictOf({ ...kp, signature: flipped(kp.signature, kp.signature.length - 1) })).toBe(false)
    expect(await verdictOf({ ...kp, signature: other.publicPackage.signature })).toBe(false)
    expect(await verdictOf({ ...kp, initKey: other.publicPackage.initKey })).toBe(false)
    const otherKey = other.publicPackage.leafNode.signaturePublicKey
    expect(await verdictOf({ ...kp, leafNode: { ...kp.leafNode, signaturePublicKey: otherKey } })).toBe(false)
    const signedByOther = await signKeyPackage(kp, other.privatePackage.signaturePrivateKey, cs.signature)
    expect(await verdictOf(signedByOther)).toBe(false)
    expect(await verdictOf({ ...kp, signature: randomBytes(kp.signature.length) })).toBe(false)
    expect(await verdictOf({ ...kp, signature: new Uint8Array() })).toBe(false)
    const junkKey = randomBytes(kp.leafNode.signaturePublicKey.length)
    expect(await verdictOf({ ...kp, leafNode: { ...kp.leafNode, signaturePublicKey: junkKey } })).toBe(false)
    // Re-signed by its own key after a change: valid again (the signature is checked, not the bytes).
    const resigned = await signKeyPackage(
      { ...kp, extensions: [] },
      made.privatePackage.signaturePrivateKey,
      cs.signature,
    )
    expect(await verdictOf(resigned)).toBe(true)
  })
})

// ts-mls writes ECDSA keys compressed; RFC 9420 (and OpenMLS) uncompressed: both are read.
const CURVES = { P256: p256, P521: p521 }
const ECDSA_SUITES = CIPHER_SUITES.filter((suite) => algorithmOf(suite) in CURVES)

describe.each(ECDSA_SUITES)('ECDSA key package signatures of %s', (suite) => {
  it('agree on a package whose key is an uncompressed point', async () => {
    const algorithm = algorithmOf(suite)
    const cs = await suiteImpl(suite)
    const { publicPackage, privatePackage } = await newKeyPackage('did:plc:signer', { suite })
    const publicKey = CURVES[algorithm as keyof typeof CURVES].getPublicKey(privatePackage.signaturePrivateKey, false)
    expect(publicKey[0]).toBe(0x04)
    const kp = { ...publicPackage, leafNode: { ...publicPackage.leafNode, signaturePublicKey: publicKey } }
    expect(await verdict(algorithm, await signKeyPackage(kp, privatePackage.signaturePrivateKey, cs.signature))).toBe(
      true,
    )
    // Signed over the compressed key: the leaf's key is part of what is signed.
    expect(await verdict(algorithm, kp)).toBe(false)
  })
})

describe('digests', () => {
  it.each(['SHA-256', 'SHA-384', 'SHA-512'] as const)('of %s are WebCrypto’s', async (algorithm) => {
    for (const data of [new Uint8Array(), randomBytes(1), randomBytes(300), randomBytes(70_000)]) {
      const reference = await makeHashImpl(crypto.subtle, algorithm).digest(data)
      expect(Buffer.from(await nativeHash(algorithm).digest(data))).toEqual(Buffer.from(reference))
    }
  })
})
