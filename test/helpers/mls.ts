import { randomBytes } from 'node:crypto'
import {
  decodeMlsMessage,
  defaultCapabilities,
  encodeMlsMessage,
  generateKeyPackage,
  getCiphersuiteFromName,
  getCiphersuiteImpl,
  type CiphersuiteImpl,
  type CiphersuiteName,
  type KeyPackage,
  type Lifetime,
  type PrivateKeyPackage,
} from 'ts-mls'
import { makeKeyPackageRef } from 'ts-mls/keyPackage.js'
import type { XrpcCall } from './xrpc.js'

/** Anything that can call the server: a TestApp, or { call: xrpcClient(url) }. */
type Caller = { call: XrpcCall }
import type { TestUser } from './users.js'

export const NS = 'blue.catbird.mls'
export const SUITE = 'MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519'

export const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64')
export const bytesJson = (bytes: Uint8Array) => ({ $bytes: Buffer.from(bytes).toString('base64').replace(/=+$/, '') })
export const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex')
export const randomGroupId = () => randomBytes(16).toString('hex')

const DAY_SECONDS = 24n * 3600n
const nowSeconds = () => BigInt(Math.floor(Date.now() / 1000))

const suites = new Map<string, Promise<CiphersuiteImpl>>()
export function suiteImpl(name: CiphersuiteName = SUITE): Promise<CiphersuiteImpl> {
  let impl = suites.get(name)
  if (!impl) suites.set(name, (impl = getCiphersuiteImpl(getCiphersuiteFromName(name))))
  return impl
}

// ---------------------------------------------------------------- key packages

interface OwnKeyPackage {
  publicPackage: KeyPackage
  privatePackage: PrivateKeyPackage
}

/** The key packages a user's device made, by KeyPackageRef (hex): it can join with any of them. */
const devices = new WeakMap<TestUser, Map<string, OwnKeyPackage>>()
const deviceOf = (user: TestUser) => {
  let device = devices.get(user)
  if (!device) devices.set(user, (device = new Map()))
  return device
}

export interface KeyPackageOptions {
  suite?: CiphersuiteName
  /** The basic credential's identity: the user's DID unless a test forges another. */
  identity?: string
  /** Default: valid from a minute ago for 30 days. */
  lifetime?: Lifetime
}

export const lifetimeFromNow = (fromSeconds: bigint, toSeconds: bigint): Lifetime => ({
  notBefore: nowSeconds() + fromSeconds,
  notAfter: nowSeconds() + toSeconds,
})

async function makeKeyPackage(user: TestUser, opts: KeyPackageOptions = {}): Promise<OwnKeyPackage & { ref: Uint8Array }> {
  const cs = await suiteImpl(opts.suite)
  const made = await generateKeyPackage(
    { credentialType: 'basic', identity: new TextEncoder().encode(opts.identity ?? user.did) },
    defaultCapabilities(),
    opts.lifetime ?? lifetimeFromNow(-60n, 30n * DAY_SECONDS),
    [],
    cs,
  )
  const ref = await makeKeyPackageRef(made.publicPackage, cs.hash)
  deviceOf(user).set(hex(ref), made)
  return { ...made, ref }
}

const encodeKeyPackage = (keyPackage: KeyPackage) =>
  encodeMlsMessage({ version: 'mls10', wireformat: 'mls_key_package', keyPackage })

/** A new key package of `user`'s device, as an MLSMessage. */
export async function keyPackage(user: TestUser, opts: KeyPackageOptions = {}): Promise<Uint8Array> {
  return encodeKeyPackage((await makeKeyPackage(user, opts)).publicPackage)
}

/** Its KeyPackageRef (RFC 9420 §5.2), as the server stores it. */
export async function keyPackageRef(data: Uint8Array, suite: CiphersuiteName = SUITE): Promise<Uint8Array> {
  const decoded = decodeMlsMessage(data, 0)?.[0]
  if (decoded?.wireformat !== 'mls_key_package') throw new Error('not a key package')
  return makeKeyPackageRef(decoded.keyPackage, (await suiteImpl(suite)).hash)
}


export interface ConvoBody {
  id: string
  epoch: number
  members: Array<{ did: string; joinedAt: string }>
  [key: string]: unknown
}

/** Creates a conversation and fails the test unless it worked. */
export async function createConvo(
  t: Caller,
  creator: TestUser,
  members: TestUser[] = [],
  extra: Record<string, unknown> = {},
): Promise<ConvoBody> {
  const res = await t.call<ConvoBody>(creator, `${NS}.createConvo`, {
    input: {
      groupId: randomGroupId(),
      cipherSuite: SUITE,
      initialMembers: members.map((m) => m.did),
      ...(members.length ? { welcomeMessage: b64(randomBytes(64)) } : {}),
      ...extra,
    },
  })
  if (res.status !== 200) throw new Error(`createConvo: ${res.status} ${JSON.stringify(res.body)}`)
  return res.body
}

export function sendMessage(
  t: Caller,
  sender: TestUser,
  convoId: string,
  opts: { epoch?: number; ciphertext?: Uint8Array; idempotencyKey?: string; headers?: Record<string, string> } = {},
) {
  return t.call<{ messageId: string; receivedAt: string }>(sender, `${NS}.sendMessage`, {
    input: {
      convoId,
      senderDid: sender.did,
      epoch: opts.epoch ?? 0,
      ciphertext: bytesJson(opts.ciphertext ?? randomBytes(32)),
      ...(opts.idempotencyKey !== undefined ? { idempotencyKey: opts.idempotencyKey } : {}),
    },
    ...(opts.headers ? { headers: opts.headers } : {}),
  })
}

/** Publishes a key package of `user`'s: a new real one unless `data` is given. */
export async function publishKeyPackage(t: Caller, user: TestUser, data?: Uint8Array, extra: Record<string, unknown> = {}) {
  return t.call<{ available: number }>(user, `${NS}.publishKeyPackage`, {
    input: { keyPackage: b64(data ?? (await keyPackage(user))), cipherSuite: SUITE, ...extra },
  })
}
