import { invalidRequest, refusalLine } from '../xrpc/errors.js'
import { decodeBase64 } from '../lexicon/wire.js'
import {
  commitSignedBySender,
  isCipherSuite,
  MlsDecodeError,
  readCommitProposals,
  readExternalCommit,
  readGroupInfo,
  readKeyPackage,
  readMessageHeader,
  readRatchetTreeLeaves,
  readWelcome,
  type KeyPackageFacts,
  type MessageHeader,
} from '../mls/index.js'
import { convoIdFor } from '../services/membership.js'
import type { Commit } from '../services/commits.js'
import type { GroupInfo } from '../services/groupInfo.js'
import type { Welcome } from '../services/admission.js'
import type { KeptTree, RemovalCommit } from '../services/removal.js'

/**
 * `read` once per request input: a keyed write's shard (found before the
 * handler runs) and the handler both need what the input's MLS bytes say.
 */
export function oncePerInput<I extends object, T>(read: (input: I) => T): (input: I) => T {
  const done = new WeakMap<I, T>()
  return (input) => {
    if (done.has(input)) return done.get(input) as T
    const value = read(input)
    done.set(input, value)
    return value
  }
}

/**
 * The conversation a request names when it carries an MLS message in a
 * base64 field (`field` picks it): by the message's group id (the client-era
 * clients send that as convoId) or by its id (convoIdFor). Read once per
 * request input; the field's size and kind are checked where the handler
 * reads it in full.
 */
export function convoOfMessage<I extends { convoId: string }>(
  field: (input: I) => string | undefined,
  name: string,
): (input: I) => string {
  return oncePerInput((input: I) => {
    const value = field(input)
    const bytes = value === undefined ? undefined : decodeBase64(value)
    if (value !== undefined && !bytes) throw invalidRequest('InvalidMessage', `${name} must be non-empty base64`)
    try {
      return convoIdFor(input.convoId, bytes && readMessageHeader(bytes).groupId)
    } catch (err) {
      throw mlsInputError(err, 'InvalidMessage', name)
    }
  })
}

/** A device as a request names it: its server id, or its MLS DID (`<user DID>#<deviceId>`) of the caller. */
export const deviceIdOf = (named: string | undefined, caller: string): string | undefined =>
  named?.startsWith(`${caller}#`) ? named.slice(caller.length + 1) : named

export function requireCipherSuite(suite: string): void {
  if (!isCipherSuite(suite)) {
    throw invalidRequest('InvalidCipherSuite', `Unsupported cipher suite: ${suite.slice(0, 100)}`)
  }
}

/**
 * Decodes a base64 string field carrying MLS bytes, bounded in size.
 * Returns undefined when the field is absent.
 */
function decodeBinaryField(
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
function mlsInputError(err: unknown, name: string, field: string): unknown {
  return err instanceof MlsDecodeError ? invalidRequest(name, `${field}: ${err.message}`) : err
}

/**
 * The sizes a padded ciphertext may have (the client-era clients' buckets,
 * MLSMessagePadding.swift): 512 to 8192 bytes by powers of two, then whole
 * multiples of 8192. The lexicon's minimum is 512.
 */
const isPaddingBucket = (size: number): boolean =>
  [512, 1024, 2048, 4096].includes(size) || (size >= 8192 && size % 8192 === 0)

/**
 * The MLSMessage inside a padded ciphertext: a 4-byte big-endian length, the
 * message, then zeros up to `paddedSize` bytes, which is the ciphertext's
 * length and one of the buckets. The padding must be zeros: bytes hidden
 * there would travel to every member unread.
 */
export function unpad(ciphertext: Uint8Array, paddedSize: number): Uint8Array {
  const refuse = (why: string) => invalidRequest('InvalidMessage', `ciphertext: ${why}`)
  if (ciphertext.length !== paddedSize) {
    throw invalidRequest(undefined, `paddedSize is ${paddedSize}, but the ciphertext has ${ciphertext.length} bytes`)
  }
  if (!isPaddingBucket(paddedSize)) {
    throw invalidRequest(
      undefined,
      `paddedSize ${paddedSize} is not a padding bucket (512 to 4096 by powers of two, then multiples of 8192)`,
    )
  }
  const length = Buffer.from(ciphertext.buffer, ciphertext.byteOffset, 4).readUInt32BE(0)
  if (length === 0 || length > paddedSize - 4) {
    throw refuse(`its length prefix (${length}) does not fit in ${paddedSize - 4} bytes`)
  }
  const end = 4 + length
  for (let i = end; i < ciphertext.length; i++) {
    if (ciphertext[i] !== 0) throw refuse('its padding after the message must be zeros')
  }
  return ciphertext.subarray(4, end)
}

/** The header of an MLSMessage field; the epoch declared with it must be the header's. */
export function readMessage(bytes: Uint8Array, field: string, declaredEpoch: number | undefined): MessageHeader {
  let header: MessageHeader
  try {
    header = readMessageHeader(bytes)
  } catch (err) {
    throw mlsInputError(err, 'InvalidMessage', field)
  }
  if (declaredEpoch !== undefined && declaredEpoch !== header.epoch) {
    throw invalidRequest('EpochMismatch', `${field} is an MLS message of epoch ${header.epoch}, not ${declaredEpoch}`)
  }
  return header
}

/** A commit field (base64 of an MLSMessage whose content is a commit), with the epoch declared with it. */
export function readCommit(
  value: string | undefined,
  maxBytes: number,
  declaredEpoch: number | undefined,
): Commit | undefined {
  const data = decodeBinaryField(value, 'commit', maxBytes)
  if (!data) return undefined
  const header = readMessage(data, 'commit', declaredEpoch)
  if (header.contentType !== 'commit') {
    throw invalidRequest('InvalidMessage', `commit: an MLS ${header.contentType} message, not a commit`)
  }
  return { data, groupId: header.groupId, epoch: header.epoch }
}

/** The welcomeMessage field: base64 of an MLS Welcome. */
export function readWelcomeField(value: string | undefined, maxBytes: number): Welcome | undefined {
  const data = decodeBinaryField(value, 'welcomeMessage', maxBytes)
  if (!data) return undefined
  try {
    return { data, ...readWelcome(data) }
  } catch (err) {
    throw mlsInputError(err, 'InvalidMessage', 'welcomeMessage')
  }
}

/** The groupInfo field: base64 of an MLS GroupInfo (in an MLSMessage, or bare). */
export function readGroupInfoField(value: string | undefined, maxBytes: number): GroupInfo | undefined {
  const data = decodeBinaryField(value, 'groupInfo', maxBytes, 'InvalidGroupInfo')
  if (!data) return undefined
  try {
    return { data, ...readGroupInfo(data) }
  } catch (err) {
    throw mlsInputError(err, 'InvalidGroupInfo', 'groupInfo')
  }
}

/** A GroupInfo describes the epoch a commit leads to, so it comes only with a commit. */
export const groupInfoWithoutCommit = () =>
  invalidRequest(
    undefined,
    'groupInfo describes the epoch a commit leads to: send it with the commit, or alone with updateGroupInfo',
  )

/** A commit with the GroupInfo sent along (a commit, when there is one). */
export function withGroupInfo<C extends Commit | undefined>(commit: C, groupInfo: GroupInfo | undefined): C {
  if (!groupInfo) return commit
  if (!commit) throw groupInfoWithoutCommit()
  return { ...commit, groupInfo } as C
}

/** The externalCommit field: base64 of an MLSMessage carrying an external commit, and the identity its new leaf names. */
export function readExternalCommitField(
  value: string,
  maxBytes: number,
): { commit: Commit; joinerIdentity: string | undefined; joinerSignatureKey: Uint8Array } {
  const data = decodeBinaryField(value, 'externalCommit', maxBytes, 'InvalidCommit') as Uint8Array
  try {
    const { groupId, epoch, joinerIdentity, joinerSignatureKey } = readExternalCommit(data)
    return { commit: { data, groupId, epoch }, joinerIdentity, joinerSignatureKey }
  } catch (err) {
    throw mlsInputError(err, 'InvalidCommit', 'externalCommit')
  }
}

/**
 * What a removal commit (a member's commit sent as a PublicMessage)
 * proposes, and the ratchet tree of the GroupInfo the server keeps for the
 * current epoch (`kept`), which says whose leaves those are.
 */
export async function readRemoval(
  commit: Commit,
  kept: { epoch: number; data: Uint8Array } | undefined,
): Promise<{ commit: RemovalCommit; tree: KeptTree }> {
  let proposals: RemovalCommit
  try {
    proposals = readCommitProposals(commit.data)
  } catch (err) {
    throw mlsInputError(err, 'InvalidCommit', 'commit')
  }
  if (!kept) return { commit: proposals, tree: { kind: 'none' } }
  try {
    const { identities } = readRatchetTreeLeaves(kept.data)
    const commitSigned = await commitSignedBySender(commit.data, kept.data)
    return { commit: proposals, tree: { kind: 'tree', epoch: kept.epoch, identities, commitSigned } }
  } catch (err) {
    if (err instanceof MlsDecodeError) return { commit: proposals, tree: { kind: 'unreadable', why: err.message } }
    throw err
  }
}

const DAY_MS = 24 * 3600 * 1000
/** Client clocks run a little fast; don't refuse an expiry for that. */
const CLOCK_SKEW_MS = 5 * 60 * 1000
const MAX_KEY_PACKAGE_BYTES = 65536

const invalidKeyPackage = (why: string) => invalidRequest('InvalidKeyPackage', `keyPackage: ${why}`)

/** The checks RFC 9420 §10.1 asks of a key package, plus ours: the caller's own, and not kept too long. */
function checkKeyPackage(
  kp: KeyPackageFacts,
  args: { owner: string; cipherSuite: string; now: number; maxLifetimeMs: number },
): void {
  if (kp.cipherSuite !== args.cipherSuite) {
    throw invalidKeyPackage(`its cipher suite is ${kp.cipherSuite}, not the declared ${args.cipherSuite}`)
  }
  if (kp.identity !== args.owner) {
    throw invalidKeyPackage('its credential must be a basic credential whose identity is your DID')
  }
  if (!kp.signatureValid) throw invalidKeyPackage('its signature does not verify')
  if (kp.notBefore * 1000 > args.now + CLOCK_SKEW_MS) throw invalidKeyPackage('its lifetime has not begun')
  if (kp.notAfter * 1000 <= args.now) throw invalidKeyPackage('its lifetime has ended')
  if (kp.notAfter * 1000 > args.now + args.maxLifetimeMs + CLOCK_SKEW_MS) {
    throw invalidKeyPackage(`its lifetime ends more than ${args.maxLifetimeMs / DAY_MS} days from now`)
  }
}

/** A key package as publishKeyPackage, publishKeyPackages and registerDevice take it. */
export interface KeyPackageInput {
  keyPackage: string
  cipherSuite: string
  expires?: string
}

/** A key package that passed every check, as the services store it. */
export interface CheckedKeyPackage {
  cipherSuite: string
  data: Uint8Array
  /** Its KeyPackageRef. */
  ref: Uint8Array
  /** Its leaf's signature key: its device's MLS key. */
  signatureKey: Uint8Array
  /** `expires`, or the end of the package's own lifetime when that comes first. */
  expiresAt: Date
  /** It carries the last_resort extension. */
  lastResort: boolean
}

/**
 * Reads and checks one of `owner`'s key packages: a supported cipher suite,
 * an expiry neither past nor beyond `maxLifetimeDays`, and a package of that
 * suite whose basic credential is the owner's DID, whose signature verifies
 * and whose lifetime is under way and ends within `maxLifetimeDays`. Refuses
 * with the named XRPC error of the first check that fails.
 */
export async function readKeyPackageInput(
  input: KeyPackageInput,
  args: { owner: string; maxLifetimeDays: number },
): Promise<CheckedKeyPackage> {
  requireCipherSuite(input.cipherSuite)
  const data = decodeBinaryField(
    input.keyPackage,
    'keyPackage',
    MAX_KEY_PACKAGE_BYTES,
    'InvalidKeyPackage',
  ) as Uint8Array
  const maxLifetimeMs = args.maxLifetimeDays * DAY_MS
  const now = Date.now()
  const expires = input.expires ? new Date(input.expires) : undefined
  if (expires && expires.getTime() <= now) {
    throw invalidRequest(undefined, 'expires is in the past')
  }
  if (expires && expires.getTime() > now + maxLifetimeMs + CLOCK_SKEW_MS) {
    throw invalidRequest('ExpirationTooFar', `expires may be at most ${args.maxLifetimeDays} days from now`)
  }
  const facts = await readKeyPackage(data).catch((err: unknown) => {
    throw mlsInputError(err, 'InvalidKeyPackage', 'keyPackage')
  })
  checkKeyPackage(facts, { owner: args.owner, cipherSuite: input.cipherSuite, now, maxLifetimeMs })
  const notAfter = new Date(facts.notAfter * 1000)
  return {
    cipherSuite: facts.cipherSuite,
    data,
    ref: facts.ref,
    signatureKey: facts.signatureKey,
    // Never handed out after the package's own lifetime.
    expiresAt: expires && expires < notAfter ? expires : notAfter,
    lastResort: facts.lastResort,
  }
}

/** What became of one item of a request that reports on each: read, or refused (`Name: message`). */
export type ItemResult<R> = { ok: R; refused?: undefined } | { ok?: undefined; refused: string }

/**
 * Reads each item of a batch with `read`, side by side: its result, or the
 * refusal it met as one line. Anything else (the database gone) fails the
 * whole request.
 */
export function readEach<T, R>(items: T[], read: (item: T, index: number) => Promise<R>): Promise<ItemResult<R>[]> {
  return Promise.all(
    items.map((item, index) =>
      read(item, index).then(
        (ok) => ({ ok }),
        (err: unknown) => {
          const refused = refusalLine(err)
          if (refused === undefined) throw err
          return { refused }
        },
      ),
    ),
  )
}
