/**
 * What the server reads of MLS (RFC 9420): the facts the protocol leaves in
 * the clear, decoded with ts-mls and handed out as plain values. No ts-mls
 * type leaves this module, so the rest of the server neither knows nor cares
 * which library reads the bytes.
 *
 * Bytes that are not what they claim to be throw MlsDecodeError; the API
 * turns it into the named XRPC error of the field they came in.
 */
import { decodeMlsMessage, getCiphersuiteFromName, type CiphersuiteName, type Credential } from 'ts-mls'
import type { Decoder } from 'ts-mls/codec/tlsDecoder.js'
import { refhash, type Hash } from 'ts-mls/crypto/hash.js'
import { makeNobleSignatureImpl } from 'ts-mls/crypto/implementation/default/makeNobleSignatureImpl.js'
import type { Signature } from 'ts-mls/crypto/signature.js'
import { verifyFramedContentSignature } from 'ts-mls/framedContent.js'
import { decodeGroupInfo, ratchetTreeFromExtension } from 'ts-mls/groupInfo.js'
import { decodeKeyPackage, verifyKeyPackage } from 'ts-mls/keyPackage.js'
import { decodeWelcome } from 'ts-mls/welcome.js'
import { nativeHash, nativeSignature } from './native.js'

/** The cipher suites the lexicons name (RFC 9420 §17.1); the server verifies key packages of each. */
export const CIPHER_SUITES = [
  'MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519',
  'MLS_128_DHKEMP256_AES128GCM_SHA256_P256',
  'MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519',
  'MLS_256_DHKEMX448_AES256GCM_SHA512_Ed448',
  'MLS_256_DHKEMP521_AES256GCM_SHA512_P521',
  'MLS_256_DHKEMX448_CHACHA20POLY1305_SHA512_Ed448',
] as const satisfies readonly CiphersuiteName[]

export type CipherSuite = (typeof CIPHER_SUITES)[number]

export const isCipherSuite = (name: string): name is CipherSuite => (CIPHER_SUITES as readonly string[]).includes(name)

export class MlsDecodeError extends Error {}

export interface KeyPackageFacts {
  cipherSuite: string
  /** The identity of a basic credential, as UTF-8; undefined for any other credential. */
  identity: string | undefined
  /** Lifetime, in seconds since the Unix epoch. */
  notBefore: number
  notAfter: number
  /** The KeyPackageRef (RFC 9420 §5.2): how a Welcome names the package. */
  ref: Uint8Array
  /**
   * The signature public key of its leaf node, as the package carries it:
   * the key of the device that made it (a device signs all its packages with
   * one key), which binds the package to that device.
   */
  signatureKey: Uint8Array
  /** The package is signed by the signature key of its own leaf node. */
  signatureValid: boolean
  /**
   * It carries the last_resort extension (type 0x000A, from the MLS
   * extensions draft): its owner allows it to be used by more than one
   * Welcome, for when no other key package is left.
   */
  lastResort: boolean
}

export type ContentType = 'application' | 'proposal' | 'commit'

/** The clear part of a PublicMessage or PrivateMessage (RFC 9420 §6). */
export interface MessageHeader {
  wireFormat: 'PublicMessage' | 'PrivateMessage'
  /** The MLS group id, lowercase hex (as the lexicons carry it). */
  groupId: string
  epoch: number
  contentType: ContentType
}

/** The clear facts of a GroupInfo (RFC 9420 §12.4.3): what an external joiner builds its commit on. */
export interface GroupInfoFacts {
  /** The MLS group id, lowercase hex. */
  groupId: string
  /** The epoch it describes: an external commit built on it is of this epoch. */
  epoch: number
  cipherSuite: string
  /** It carries the external_pub extension, without which no one can join by external commit. */
  externalPub: boolean
}

/** What an external commit (RFC 9420 §12.4.3.2) shows in the clear. */
export interface ExternalCommitFacts {
  /** The MLS group id, lowercase hex. */
  groupId: string
  /** The epoch it was built on; it moves the group to epoch + 1. */
  epoch: number
  /**
   * The identity of the basic credential of the joiner's new leaf (the leaf
   * node of the commit's UpdatePath), as UTF-8; undefined for any other credential.
   */
  joinerIdentity: string | undefined
  /** The signature key of the joiner's new leaf: which of its user's devices it is. */
  joinerSignatureKey: Uint8Array
}

/** What a member's commit sent as a PublicMessage shows of its proposals (RFC 9420 §12.4). */
export interface CommitProposals {
  /** The MLS group id, lowercase hex. */
  groupId: string
  /** The epoch it was built on. */
  epoch: number
  /** The committer's leaf index. */
  senderLeaf: number
  /** The leaves its Remove proposals (carried by value) remove, in order. */
  removedLeaves: number[]
  /** The types of the other proposals it carries by value. */
  otherProposals: string[]
  /** How many proposals it names by reference: sent earlier, perhaps encrypted, the server cannot read them. */
  proposalReferences: number
}

/** The members of a group as the ratchet tree of its GroupInfo lists them (RFC 9420 §7.8, §12.4.3.3). */
export interface RatchetTreeLeaves {
  /** The MLS group id, lowercase hex. */
  groupId: string
  /** The epoch the GroupInfo describes. */
  epoch: number
  /**
   * By leaf index: the identity of the leaf's basic credential as UTF-8
   * (the user's DID), null for a blank leaf, '' for another credential.
   */
  identities: Array<string | null>
}

export interface WelcomeFacts {
  cipherSuite: string
  /** The KeyPackageRef of every EncryptedGroupSecrets: the packages of the members it admits. */
  keyPackageRefs: Uint8Array[]
}

// MLSMessage framing (RFC 9420 §6): uint16 version, uint16 wire_format.
const MLS10 = 1
const WIRE_FORMAT = { privateMessage: 2, welcome: 3, groupInfo: 4, keyPackage: 5 } as const
/** The last_resort key package extension (draft-ietf-mls-extensions); ts-mls knows it by number only. */
const LAST_RESORT_EXTENSION = 0x000a

/** The value when `decode` reads all of `bytes`; undefined when it cannot. */
function decodeExactly<T>(decode: Decoder<T>, bytes: Uint8Array): T | undefined {
  try {
    const decoded = decode(bytes, 0)
    return decoded && decoded[1] === bytes.length ? decoded[0] : undefined
  } catch {
    // ts-mls throws on some truncated inputs and answers undefined on others: both mean "not this".
    return undefined
  }
}

/**
 * Key packages and Welcomes travel inside an MLSMessage (RFC 9420 §6) or
 * bare, as clients do both (OpenMLS serializes key packages bare). The one
 * that decodes completely wins, with the bytes it was read from.
 */
function decodeFramed<T>(
  decode: Decoder<T>,
  bytes: Uint8Array,
  wireFormat: number,
): { value: T; encoded: Uint8Array } | undefined {
  const framed = bytes.length > 4 && bytes[0] === 0 && bytes[1] === MLS10 && bytes[2] === 0 && bytes[3] === wireFormat
  for (const encoded of framed ? [bytes.subarray(4), bytes] : [bytes]) {
    const value = decodeExactly(decode, encoded)
    if (value !== undefined) return { value, encoded }
  }
  return undefined
}

const hex = (bytes: Uint8Array) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex')

function toEpoch(epoch: bigint): number {
  if (epoch > BigInt(Number.MAX_SAFE_INTEGER)) throw new MlsDecodeError(`epoch ${epoch} is out of range`)
  return Number(epoch)
}

const utf8 = new TextDecoder('utf-8', { fatal: true })

function utf8OrUndefined(bytes: Uint8Array): string | undefined {
  try {
    return utf8.decode(bytes)
  } catch {
    return undefined
  }
}

/** A basic credential's identity as UTF-8 (how the server's users name themselves: their DID). */
const basicIdentity = (credential: Credential): string | undefined =>
  credential.credentialType === 'basic' ? utf8OrUndefined(credential.identity) : undefined

// A suite's hash and signature, built once: all the crypto the server does.
const suiteCrypto = new Map<CipherSuite, Promise<{ hash: Hash; signature: Signature }>>()

/** Node's own digests, and signature checks where it has them (src/mls/native.ts), else ts-mls's. */
function cryptoOf(suite: CipherSuite): Promise<{ hash: Hash; signature: Signature }> {
  let found = suiteCrypto.get(suite)
  if (!found) {
    const cs = getCiphersuiteFromName(suite)
    const native = nativeSignature(cs.signature)
    found = (native ? Promise.resolve(native) : makeNobleSignatureImpl(cs.signature)).then((signature) => ({
      hash: nativeHash(cs.hash),
      signature,
    }))
    suiteCrypto.set(suite, found)
  }
  return found
}

export async function readKeyPackage(bytes: Uint8Array): Promise<KeyPackageFacts> {
  const decoded = decodeFramed(decodeKeyPackage, bytes, WIRE_FORMAT.keyPackage)
  if (!decoded) throw new MlsDecodeError('not an MLS KeyPackage')
  const { value: kp, encoded } = decoded
  if (!isCipherSuite(kp.cipherSuite)) throw new MlsDecodeError(`unsupported cipher suite ${kp.cipherSuite}`)
  const { hash, signature } = await cryptoOf(kp.cipherSuite)
  const { credential, lifetime } = kp.leafNode
  return {
    cipherSuite: kp.cipherSuite,
    identity: basicIdentity(credential),
    notBefore: Number(lifetime.notBefore),
    notAfter: Number(lifetime.notAfter),
    // Over the bytes as sent, not a re-encoding: the ref is what the client computed.
    ref: await refhash('MLS 1.0 KeyPackage Reference', encoded, hash),
    signatureKey: kp.leafNode.signaturePublicKey,
    signatureValid: await verifyKeyPackage(kp, signature).catch(() => false),
    lastResort: kp.extensions.some((ext) => ext.extensionType === LAST_RESORT_EXTENSION),
  }
}

const CONTENT_TYPES: Record<number, ContentType> = { 1: 'application', 2: 'proposal', 3: 'commit' }
const malformedPrivateMessage = () => new MlsDecodeError('not a well-formed MLS PrivateMessage')

/** The length prefix of the variable-length vector at `offset` (RFC 9420 §2.1.2): its bytes, by the top two bits (0b11 is invalid). */
function prefixBytes(bytes: Uint8Array, offset: number): number {
  const first = bytes[offset]
  const prefix = first === undefined ? 0 : [1, 2, 4, 0][first >> 6]
  if (!prefix || offset + prefix > bytes.length) throw malformedPrivateMessage()
  return prefix
}

/** The end of the variable-length vector at `offset`. */
function vectorEnd(bytes: Uint8Array, offset: number): number {
  const prefix = prefixBytes(bytes, offset)
  let length = (bytes[offset] as number) & 0x3f
  for (let i = 1; i < prefix; i++) length = length * 256 + (bytes[offset + i] as number)
  const end = offset + prefix + length
  if (end > bytes.length) throw malformedPrivateMessage()
  return end
}

/**
 * The header of an MLSMessage carrying a PrivateMessage, read straight from
 * its TLS encoding (RFC 9420 §6.3: group_id, epoch and content_type come
 * first), checking that the rest is exactly the three length-prefixed
 * fields that follow. Every message sent is read, and ts-mls's full decode
 * costs several times as much (BENCHMARKS.md); the tests hold this reader
 * to ts-mls's answers. Undefined for anything but a PrivateMessage.
 */
function readPrivateMessageHeader(bytes: Uint8Array): MessageHeader | undefined {
  if (
    bytes.length < 4 ||
    bytes[0] !== 0 ||
    bytes[1] !== MLS10 ||
    bytes[2] !== 0 ||
    bytes[3] !== WIRE_FORMAT.privateMessage
  ) {
    return undefined
  }
  const groupEnd = vectorEnd(bytes, 4)
  const groupId = hex(bytes.subarray(4 + prefixBytes(bytes, 4), groupEnd))
  // uint64 epoch, then uint8 content_type.
  if (groupEnd + 9 > bytes.length) throw malformedPrivateMessage()
  let high = 0
  let low = 0
  for (let i = 0; i < 4; i++) {
    high = high * 256 + (bytes[groupEnd + i] as number)
    low = low * 256 + (bytes[groupEnd + 4 + i] as number)
  }
  // Past 2^53 - 1 an epoch is no JS number (and no real group gets there): refused, as toEpoch does.
  if (high > 0x1fffff) throw new MlsDecodeError('epoch is out of range')
  const contentType = CONTENT_TYPES[bytes[groupEnd + 8] as number]
  if (!contentType) throw malformedPrivateMessage()
  // authenticated_data, encrypted_sender_data, ciphertext, and nothing after.
  const end = vectorEnd(bytes, vectorEnd(bytes, vectorEnd(bytes, groupEnd + 9)))
  if (end !== bytes.length) throw malformedPrivateMessage()
  return { wireFormat: 'PrivateMessage', groupId, epoch: high * 2 ** 32 + low, contentType }
}

/** The PublicMessage an MLSMessage carries; `what` names the other kinds it could have been, for the error. */
function decodePublicMessage(bytes: Uint8Array, what: string) {
  const message = decodeExactly(decodeMlsMessage, bytes)
  if (!message || message.version !== 'mls10') throw new MlsDecodeError('not an MLS 1.0 MLSMessage')
  if (message.wireformat !== 'mls_public_message') {
    throw new MlsDecodeError(`an MLSMessage of wire format ${message.wireformat}, not ${what}`)
  }
  return message.publicMessage
}

/** The header of an MLSMessage carrying a PublicMessage or a PrivateMessage. */
export function readMessageHeader(bytes: Uint8Array): MessageHeader {
  const privateHeader = readPrivateMessageHeader(bytes)
  if (privateHeader) return privateHeader
  const { groupId, epoch, contentType } = decodePublicMessage(bytes, 'a PublicMessage or PrivateMessage').content
  return { wireFormat: 'PublicMessage', groupId: hex(groupId), epoch: toEpoch(epoch), contentType }
}

/**
 * An MLSMessage carrying an external commit: a PublicMessage (a joiner has
 * no keys to encrypt with) whose sender is `new_member_commit`, with an
 * UpdatePath (the joiner's new leaf) and its proposals by value, exactly one
 * ExternalInit among them (RFC 9420 §12.4.3.2). Stricter than the RFC where
 * the server's membership list must stay true: besides the ExternalInit only
 * one Remove (the joiner's old leaf, when it resyncs) and PreSharedKeys, so
 * an external commit adds no one but its sender.
 */
export function readExternalCommit(bytes: Uint8Array): ExternalCommitFacts {
  const { content } = decodePublicMessage(bytes, 'a PublicMessage')
  if (content.contentType !== 'commit')
    throw new MlsDecodeError(`a PublicMessage of content type ${content.contentType}, not a commit`)
  if (content.sender.senderType !== 'new_member_commit') {
    throw new MlsDecodeError(
      `a commit sent by a ${content.sender.senderType}, not by a new member (an external commit)`,
    )
  }
  const { proposals, path } = content.commit
  if (!path) throw new MlsDecodeError('an external commit without an UpdatePath: it has no leaf for its sender')
  const count = new Map<string, number>()
  for (const p of proposals) {
    if (p.proposalOrRefType !== 'proposal')
      throw new MlsDecodeError('an external commit carries proposals by value only')
    const type = String(p.proposal.proposalType)
    count.set(type, (count.get(type) ?? 0) + 1)
  }
  if (count.get('external_init') !== 1)
    throw new MlsDecodeError('an external commit carries exactly one ExternalInit proposal')
  if ((count.get('remove') ?? 0) > 1)
    throw new MlsDecodeError("an external commit removes at most one leaf: its sender's old one")
  const other = [...count.keys()].find((type) => !['external_init', 'remove', 'psk'].includes(type))
  if (other) throw new MlsDecodeError(`an external commit may not carry a proposal of type ${other}`)
  return {
    groupId: hex(content.groupId),
    epoch: toEpoch(content.epoch),
    joinerIdentity: basicIdentity(path.leafNode.credential),
    joinerSignatureKey: path.leafNode.signaturePublicKey,
  }
}

/** A member's commit sent as a PublicMessage. */
function decodeMemberCommit(bytes: Uint8Array) {
  const message = decodePublicMessage(
    bytes,
    'a PublicMessage (a commit the server must read is sent in the clear: a PrivateMessage hides its proposals)',
  )
  const { content } = message
  if (content.contentType !== 'commit')
    throw new MlsDecodeError(`a PublicMessage of content type ${content.contentType}, not a commit`)
  if (content.sender.senderType !== 'member')
    throw new MlsDecodeError(`a commit sent by a ${content.sender.senderType}, not by a member`)
  return { message, content, commit: content.commit, senderLeaf: content.sender.leafIndex }
}

/** The proposals of a member's commit sent as a PublicMessage. */
export function readCommitProposals(bytes: Uint8Array): CommitProposals {
  const { content, commit, senderLeaf } = decodeMemberCommit(bytes)
  const removedLeaves: number[] = []
  const otherProposals: string[] = []
  let proposalReferences = 0
  for (const p of commit.proposals) {
    if (p.proposalOrRefType === 'reference') proposalReferences++
    else if (p.proposal.proposalType === 'remove') removedLeaves.push(p.proposal.remove.removed)
    else otherProposals.push(String(p.proposal.proposalType))
  }
  return {
    groupId: hex(content.groupId),
    epoch: toEpoch(content.epoch),
    senderLeaf,
    removedLeaves,
    otherProposals,
    proposalReferences,
  }
}

/** A GroupInfo, in an MLSMessage or bare, decoded. */
function decodeAnyGroupInfo(bytes: Uint8Array) {
  const decoded = decodeFramed(decodeGroupInfo, bytes, WIRE_FORMAT.groupInfo)
  if (!decoded) throw new MlsDecodeError('not an MLS GroupInfo')
  return decoded.value
}

/** The ratchet tree a GroupInfo carries in its ratchet_tree extension; refused without one. */
function ratchetTreeOf(info: ReturnType<typeof decodeAnyGroupInfo>) {
  let tree
  try {
    tree = ratchetTreeFromExtension(info)
  } catch {
    throw new MlsDecodeError('a GroupInfo whose ratchet_tree extension does not decode')
  }
  if (!tree) throw new MlsDecodeError('a GroupInfo without the ratchet_tree extension: it names no members')
  return tree
}

/** Who holds each leaf of the ratchet tree a GroupInfo carries (its ratchet_tree extension). */
export function readRatchetTreeLeaves(groupInfo: Uint8Array): RatchetTreeLeaves {
  const info = decodeAnyGroupInfo(groupInfo)
  const tree = ratchetTreeOf(info)
  const identities: Array<string | null> = []
  // Leaves sit at the even node indexes (RFC 9420 §4.2).
  for (let node = 0; node < tree.length; node += 2) {
    const found = tree[node]
    identities.push(found?.nodeType === 'leaf' ? (basicIdentity(found.leaf.credential) ?? '') : null)
  }
  return { groupId: hex(info.groupContext.groupId), epoch: toEpoch(info.groupContext.epoch), identities }
}

/**
 * Whether a member's commit (a PublicMessage) is signed by the signature
 * key of its sender's leaf in the ratchet tree of `groupInfo`, the GroupInfo
 * of the epoch it was built on (RFC 9420 §6.1: the signature covers the
 * group context of that epoch too).
 */
export async function commitSignedBySender(commit: Uint8Array, groupInfo: Uint8Array): Promise<boolean> {
  const { message, content, senderLeaf } = decodeMemberCommit(commit)
  const info = decodeAnyGroupInfo(groupInfo)
  const leaf = ratchetTreeOf(info)[senderLeaf * 2]
  const suite = info.groupContext.cipherSuite
  if (leaf?.nodeType !== 'leaf' || !isCipherSuite(suite)) return false
  const { signature } = await cryptoOf(suite)
  return verifyFramedContentSignature(
    leaf.leaf.signaturePublicKey,
    'mls_public_message',
    content,
    message.auth,
    info.groupContext,
    signature,
  ).catch(() => false)
}

/** A GroupInfo, in an MLSMessage or bare (as clients send both). */
export function readGroupInfo(bytes: Uint8Array): GroupInfoFacts {
  const { groupContext, extensions } = decodeAnyGroupInfo(bytes)
  return {
    groupId: hex(groupContext.groupId),
    epoch: toEpoch(groupContext.epoch),
    cipherSuite: groupContext.cipherSuite,
    externalPub: extensions.some((ext) => ext.extensionType === 'external_pub'),
  }
}

export function readWelcome(bytes: Uint8Array): WelcomeFacts {
  const decoded = decodeFramed(decodeWelcome, bytes, WIRE_FORMAT.welcome)
  if (!decoded) throw new MlsDecodeError('not an MLS Welcome')
  const welcome = decoded.value
  return { cipherSuite: welcome.cipherSuite, keyPackageRefs: welcome.secrets.map((s) => s.newMember) }
}
