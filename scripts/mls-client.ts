/**
 * What an MLS client makes for itself, with ts-mls: key packages whose basic
 * credential is its DID, a new group of one, application messages, and the
 * MLSMessage encodings they travel in. Shared by the project's two MLS
 * clients: the development CLI (`npm run mls`, scripts/mls.ts) and the test
 * kit (test/helpers/mls.ts, which builds groups of many on it).
 *
 * It lives beside the development commands because it belongs to neither
 * the product nor the tests: the server only reads MLS (src/mls) and never
 * makes it, so this stays out of src/ (and of dist/ and the package); and
 * the CLI must not depend on the test kit.
 */
import {
  createApplicationMessage,
  createGroup,
  defaultCapabilities,
  encodeMlsMessage,
  generateKeyPackageWithKey,
  getCiphersuiteFromName,
  getCiphersuiteImpl,
  type CiphersuiteImpl,
  type CiphersuiteName,
  type ClientState,
  type KeyPackage,
  type Lifetime,
  type PrivateKeyPackage,
} from 'ts-mls'
import { makeKeyPackageRef } from 'ts-mls/keyPackage.js'

/** The cipher suite used unless one is named: the one RFC 9420 makes mandatory to implement (§17.1). */
export const SUITE = 'MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519' satisfies CiphersuiteName

const DAY_SECONDS = 24n * 3600n
const nowSeconds = () => BigInt(Math.floor(Date.now() / 1000))

export const lifetimeFromNow = (fromSeconds: bigint, toSeconds: bigint): Lifetime => ({
  notBefore: nowSeconds() + fromSeconds,
  notAfter: nowSeconds() + toSeconds,
})

const suites = new Map<string, Promise<CiphersuiteImpl>>()
export function suiteImpl(name: CiphersuiteName = SUITE): Promise<CiphersuiteImpl> {
  let impl = suites.get(name)
  if (!impl) suites.set(name, (impl = getCiphersuiteImpl(getCiphersuiteFromName(name))))
  return impl
}

export interface OwnKeyPackage {
  publicPackage: KeyPackage
  /** What its owner keeps to join a group with it. */
  privatePackage: PrivateKeyPackage
  /** Its KeyPackageRef (RFC 9420 §5.2): how a Welcome names it. */
  ref: Uint8Array
}

export interface KeyPackageOptions {
  suite?: CiphersuiteName
  /** Default: valid from a minute ago (clocks differ) for 30 days. */
  lifetime?: Lifetime
  /**
   * Carry the last_resort extension (type 0x000A, MLS extensions draft),
   * listed among the leaf node's capabilities: the server then hands it out
   * only when no other key package is left, and to any number of adders.
   */
  lastResort?: boolean
  /** The leaf's signature key pair: a device signs all its key packages with its one key. Default: a new one. */
  signatureKeys?: SignatureKeys
}

export interface SignatureKeys {
  signKey: Uint8Array
  publicKey: Uint8Array
}

const LAST_RESORT = 0x000a

/** A new key package whose basic credential's identity is `identity` (a DID, as the server requires). */
export async function newKeyPackage(identity: string, opts: KeyPackageOptions = {}): Promise<OwnKeyPackage> {
  const cs = await suiteImpl(opts.suite)
  const capabilities = defaultCapabilities()
  if (opts.lastResort) capabilities.extensions.push(LAST_RESORT)
  const made = await generateKeyPackageWithKey(
    { credentialType: 'basic', identity: new TextEncoder().encode(identity) },
    capabilities,
    opts.lifetime ?? lifetimeFromNow(-60n, 30n * DAY_SECONDS),
    opts.lastResort ? [{ extensionType: LAST_RESORT, extensionData: new Uint8Array() }] : [],
    opts.signatureKeys ?? (await cs.signature.keygen()),
    cs,
  )
  return { ...made, ref: await makeKeyPackageRef(made.publicPackage, cs.hash) }
}

/** A key package as it is published: in an MLSMessage (RFC 9420 §6). */
export const encodeKeyPackage = (keyPackage: KeyPackage): Uint8Array =>
  encodeMlsMessage({ version: 'mls10', wireformat: 'mls_key_package', keyPackage })

/** A new group of one, `identity`, at epoch 0. */
export async function newGroup(
  identity: string,
  groupId: Uint8Array,
  suite: CiphersuiteName = SUITE,
): Promise<ClientState> {
  const own = await newKeyPackage(identity, { suite })
  return createGroup(groupId, own.publicPackage, own.privatePackage, [], await suiteImpl(suite))
}

/** An application message (a PrivateMessage in an MLSMessage) from `state`, and the state after it. */
export async function encrypt(state: ClientState, text: Uint8Array): Promise<{ state: ClientState; data: Uint8Array }> {
  const made = await createApplicationMessage(state, text, await suiteImpl(state.groupContext.cipherSuite))
  return {
    state: made.newState,
    data: encodeMlsMessage({
      version: 'mls10',
      wireformat: 'mls_private_message',
      privateMessage: made.privateMessage,
    }),
  }
}
