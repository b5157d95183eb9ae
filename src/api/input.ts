import { invalidRequest } from '../xrpc/errors.js'
import { decodeBase64 } from '../lexicon/wire.js'
import {
  commitSignedBySender,
  isCipherSuite,
  MlsDecodeError,
  readCommitProposals,
  readExternalCommit,
  readGroupInfo,
  readMessageHeader,
  readRatchetTreeLeaves,
  readWelcome,
  type MessageHeader,
} from '../mls/index.js'
import type { Commit } from '../services/commits.js'
import type { GroupInfo } from '../services/groupInfo.js'
import type { Welcome } from '../services/admission.js'
import type { KeptTree, RemovalCommit } from '../services/removal.js'

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
): { commit: Commit; joinerIdentity: string | undefined } {
  const data = decodeBinaryField(value, 'externalCommit', maxBytes, 'InvalidCommit') as Uint8Array
  try {
    const { groupId, epoch, joinerIdentity } = readExternalCommit(data)
    return { commit: { data, groupId, epoch }, joinerIdentity }
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
