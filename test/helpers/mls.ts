/**
 * The test kit's MLS clients: real RFC 9420 objects made with ts-mls (key
 * packages, groups, Welcomes, commits, application messages), for every test
 * and benchmark that sends the server MLS bytes.
 *
 * Each TestUser gets a device that keeps the private keys of the key packages
 * it made, and each conversation a group that keeps every member's state, the
 * commits the server accepted and the latest Welcome. A member's state catches
 * up on those commits before it is used (as a client fetching them would), and
 * an invited member joins from its Welcome on first use, so tests that are not
 * about MLS can stay short. Tests about the protocol itself fetch and process
 * the server's bytes explicitly (test/mls/).
 *
 * What one client makes for itself (key packages, a group of one, application
 * messages) comes from scripts/mls-client.ts, which `npm run mls` uses too.
 * The steps that send all this to the server are the seed client's (seed.ts).
 */
import { randomBytes } from 'node:crypto'
import {
  acceptAll,
  createCommit,
  createGroupInfoWithExternalPubAndRatchetTree,
  createProposal,
  decodeMlsMessage,
  defaultKeyPackageEqualityConfig,
  emptyPskIndex,
  encodeMlsMessage,
  joinGroup,
  joinGroupExternal,
  processMessage,
  type CiphersuiteName,
  type ClientState,
  type KeyPackage,
  type LeafNode,
  type Proposal,
} from 'ts-mls'
import { defaultClientConfig } from 'ts-mls/clientConfig.js'
import { ratchetTreeFromExtension } from 'ts-mls/groupInfo.js'
import { makeKeyPackageRef } from 'ts-mls/keyPackage.js'
import {
  encodeKeyPackage,
  encrypt,
  lifetimeFromNow,
  newGroup,
  newKeyPackage,
  suiteImpl,
  SUITE,
  type KeyPackageOptions as OwnKeyPackageOptions,
  type OwnKeyPackage,
  type SignatureKeys,
} from '../../scripts/mls-client.js'
import { encodeBase64, type BytesJson } from '../../src/lexicon/wire.js'
import type { TestUser } from './users.js'

export { encrypt, lifetimeFromNow, newGroup, newKeyPackage, suiteImpl, SUITE }

/** Bytes as JSON the way atproto's encoders write them: without base64 padding (the server must take both). */
export const bytesJson = (bytes: Uint8Array): BytesJson => ({ $bytes: encodeBase64(bytes).replace(/=+$/, '') })
export const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex')
export const randomGroupId = () => randomBytes(16).toString('hex')

/**
 * A ciphertext padded as the client-era clients pad it (MLSMessagePadding.swift):
 * a 4-byte big-endian length, the MLSMessage, zeros up to the bucket (512 to
 * 8192 by powers of two, then multiples of 8192), unless one is given.
 */
export function pad(mls: Uint8Array, bucket?: number): Uint8Array {
  const size =
    bucket ??
    [512, 1024, 2048, 4096, 8192].find((b) => b >= mls.length + 4) ??
    Math.ceil((mls.length + 4) / 8192) * 8192
  const padded = new Uint8Array(size)
  new DataView(padded.buffer).setUint32(0, mls.length)
  padded.set(mls, 4)
  return padded
}

// ---------------------------------------------------------------- key packages

/** The key packages a user's device made, by KeyPackageRef (hex): it can join with any of them. */
const devices = new WeakMap<TestUser, Map<string, OwnKeyPackage>>()
const deviceOf = (user: TestUser) => {
  let device = devices.get(user)
  if (!device) devices.set(user, (device = new Map()))
  return device
}

export interface KeyPackageOptions extends OwnKeyPackageOptions {
  /** The basic credential's identity: the user's DID unless a test forges another. */
  identity?: string
}

/** A new key package of `user`'s device, as an MLSMessage. */
export async function keyPackage(user: TestUser, opts: KeyPackageOptions = {}): Promise<Uint8Array> {
  const made = await newKeyPackage(opts.identity ?? user.did, opts)
  deviceOf(user).set(hex(made.ref), made)
  return encodeKeyPackage(made.publicPackage)
}

/**
 * A device's MLS signature key pair: each of a device's key packages is
 * signed with it (`keyPackage(user, { signatureKeys })`), which is how the
 * server tells a user's devices apart.
 */
export async function deviceKeys(suite: CiphersuiteName = SUITE): Promise<SignatureKeys> {
  return (await suiteImpl(suite)).signature.keygen()
}

/** Its KeyPackageRef (RFC 9420 §5.2), as the server stores it. */
export async function keyPackageRef(data: Uint8Array, suite: CiphersuiteName = SUITE): Promise<Uint8Array> {
  return makeKeyPackageRef(decodeKeyPackage(data), (await suiteImpl(suite)).hash)
}

const decodeKeyPackage = (data: Uint8Array): KeyPackage => {
  const message = decodeMlsMessage(data, 0)?.[0]
  if (message?.wireformat !== 'mls_key_package') throw new Error('not a key package')
  return message.keyPackage
}

// ---------------------------------------------------------------- a client's MLS operations

/**
 * Joins a group from a Welcome's bytes, with the key package of `user`'s
 * device that it names; `mine` narrows them to one device's (by
 * KeyPackageRef, hex), when a Welcome names several devices of the user.
 */
export async function joinFromWelcome(
  user: TestUser,
  data: Uint8Array,
  suite: CiphersuiteName = SUITE,
  mine: (ref: string) => boolean = () => true,
): Promise<ClientState> {
  const decoded = decodeMlsMessage(data, 0)?.[0]
  if (decoded?.wireformat !== 'mls_welcome') throw new Error('not a Welcome')
  const device = deviceOf(user)
  const own = decoded.welcome.secrets
    .map((s) => hex(s.newMember))
    .filter(mine)
    .map((ref) => device.get(ref))
    .find((kp) => kp !== undefined)
  if (!own) throw new Error(`the Welcome names no key package of ${user.did}`)
  return joinGroup(decoded.welcome, own.publicPackage, own.privatePackage, emptyPskIndex, await suiteImpl(suite))
}

/** A member reads MLS bytes it received: a commit or proposal changes its state, an application message is decrypted. */
export async function receive(
  state: ClientState,
  data: Uint8Array,
  suite: CiphersuiteName = SUITE,
): Promise<{ state: ClientState; text?: Uint8Array }> {
  const decoded = decodeMlsMessage(data, 0)?.[0]
  if (decoded?.wireformat !== 'mls_private_message' && decoded?.wireformat !== 'mls_public_message') {
    throw new Error('not a PublicMessage or PrivateMessage')
  }
  const result = await processMessage(decoded, state, emptyPskIndex, acceptAll, await suiteImpl(suite))
  return result.kind === 'applicationMessage'
    ? { state: result.newState, text: result.message }
    : { state: result.newState }
}

/** A proposal (a PrivateMessage in an MLSMessage) from `state`. */
export async function propose(
  state: ClientState,
  proposal: Proposal,
  suite: CiphersuiteName = SUITE,
): Promise<{ state: ClientState; data: Uint8Array }> {
  const made = await createProposal(state, false, proposal, await suiteImpl(suite))
  return { state: made.newState, data: encodeMlsMessage(made.message) }
}

export interface Commit {
  /** The state after it, once the server accepted it. */
  state: ClientState
  data: Uint8Array
  welcome: Uint8Array | undefined
  /** The epoch it was built on. */
  epoch: number
}

/** A commit from `state` of its pending proposals plus `proposals` (none: an update of its own keys). */
export async function commit(
  state: ClientState,
  proposals: Proposal[] = [],
  opts: { publicMessage?: boolean; suite?: CiphersuiteName } = {},
): Promise<Commit> {
  const made = await createCommit(
    { state, cipherSuite: await suiteImpl(opts.suite) },
    { extraProposals: proposals, ratchetTreeExtension: true, wireAsPublicMessage: opts.publicMessage ?? false },
  )
  return {
    state: made.newState,
    data: encodeMlsMessage(made.commit),
    welcome: made.welcome && encodeMlsMessage({ version: 'mls10', wireformat: 'mls_welcome', welcome: made.welcome }),
    epoch: Number(state.groupContext.epoch),
  }
}

/**
 * The GroupInfo of `state`'s epoch as an MLSMessage, with what an external
 * joiner needs: the external_pub extension and the ratchet tree.
 */
export async function groupInfoOf(state: ClientState, suite: CiphersuiteName = SUITE): Promise<Uint8Array> {
  const groupInfo = await createGroupInfoWithExternalPubAndRatchetTree(state, [], await suiteImpl(suite))
  return encodeMlsMessage({ version: 'mls10', wireformat: 'mls_group_info', groupInfo })
}

/**
 * A device that holds none of the group's state finds its old leaf by its
 * identity (the DID), not by a signature key it no longer has (ts-mls's default).
 */
const sameIdentity = (a: LeafNode, b: LeafNode) =>
  a.credential.credentialType === 'basic' &&
  b.credential.credentialType === 'basic' &&
  Buffer.from(a.credential.identity).equals(b.credential.identity)
const resyncByIdentity = {
  ...defaultClientConfig,
  keyPackageEqualityConfig: {
    ...defaultKeyPackageEqualityConfig,
    compareKeyPackageToLeafNode: (kp: KeyPackage, leaf: LeafNode) => sameIdentity(kp.leafNode, leaf),
  },
}

export interface ExternalJoin {
  /** The external commit, an MLSMessage with a PublicMessage. */
  commit: Uint8Array
  /** The joiner's state once the server took it. */
  state: ClientState
  /** The GroupInfo of the epoch the commit leads to. */
  groupInfo: Uint8Array
  /** The epoch it was built on. */
  epoch: number
}

/**
 * `user` joins the group of `groupInfo` (an MLSMessage, with the ratchet
 * tree) by an external commit from a new key package of its device,
 * replacing its old leaf if it has one (RFC 9420 §12.4.3.2, resync): what a
 * member whose device lost its state does.
 */
export async function joinExternally(
  user: TestUser,
  groupInfo: Uint8Array,
  opts: { suite?: CiphersuiteName; identity?: string } = {},
): Promise<ExternalJoin> {
  const decoded = decodeMlsMessage(groupInfo, 0)?.[0]
  if (decoded?.wireformat !== 'mls_group_info') throw new Error('not a GroupInfo')
  const suite = opts.suite ?? SUITE
  const own = await newKeyPackage(opts.identity ?? user.did, { suite })
  const cs = await suiteImpl(suite)
  // Resync (remove the old leaf) only when there is one: ts-mls does not check that there is.
  const resync = (ratchetTreeFromExtension(decoded.groupInfo) ?? []).some(
    (node) => node?.nodeType === 'leaf' && sameIdentity(node.leaf, own.publicPackage.leafNode),
  )
  const made = await joinGroupExternal(
    decoded.groupInfo,
    own.publicPackage,
    own.privatePackage,
    resync,
    cs,
    undefined,
    resyncByIdentity,
  )
  return {
    commit: encodeMlsMessage({ version: 'mls10', wireformat: 'mls_public_message', publicMessage: made.publicMessage }),
    state: made.newState,
    groupInfo: await groupInfoOf(made.newState, suite),
    epoch: Number(decoded.groupInfo.groupContext.epoch),
  }
}

export const addProposal = (keyPackage: Uint8Array): Proposal => ({
  proposalType: 'add',
  add: { keyPackage: decodeKeyPackage(keyPackage) },
})
export const removeProposal = (state: ClientState, user: TestUser): Proposal => ({
  proposalType: 'remove',
  remove: { removed: leafOf(state, user) },
})
/** A Remove proposal for every leaf of `user` (one per device of the user in the group). */
export const removeProposals = (state: ClientState, user: TestUser): Proposal[] =>
  leavesOf(state, user).map((removed) => ({ proposalType: 'remove', remove: { removed } }))

/** The clear header of an MLSMessage carrying a PublicMessage or PrivateMessage. */
export function headerOf(data: Uint8Array): { epoch: number; contentType: string } {
  const decoded = decodeMlsMessage(data, 0)?.[0]
  if (decoded?.wireformat === 'mls_private_message') {
    return { epoch: Number(decoded.privateMessage.epoch), contentType: decoded.privateMessage.contentType }
  }
  if (decoded?.wireformat === 'mls_public_message') {
    return {
      epoch: Number(decoded.publicMessage.content.epoch),
      contentType: decoded.publicMessage.content.contentType,
    }
  }
  throw new Error('not a PublicMessage or PrivateMessage')
}

/** The epoch in an MLSMessage's header (what a sender declares with it). */
export const epochOf = (data: Uint8Array): number => headerOf(data).epoch

/** The leaf indexes of `user` (its devices) in a member's view of the tree. */
function leavesOf(state: ClientState, user: TestUser): number[] {
  const identity = new TextEncoder().encode(user.did)
  return state.ratchetTree.flatMap((node, index) =>
    node?.nodeType === 'leaf' &&
    node.leaf.credential.credentialType === 'basic' &&
    Buffer.from(node.leaf.credential.identity).equals(identity)
      ? [index / 2]
      : [],
  )
}

/** The leaf index of `user` in a member's view of the tree (its first, with several devices). */
function leafOf(state: ClientState, user: TestUser): number {
  const [leaf] = leavesOf(state, user)
  if (leaf === undefined) throw new Error(`${user.did} is not in the tree`)
  return leaf
}

// ---------------------------------------------------------------- the kit's groups, by conversation

interface Member {
  user: TestUser
  state?: ClientState
  /** Until the first use: the Welcome it was invited with. */
  welcome?: Uint8Array
  /** One operation on the state at a time (sends may be started concurrently). */
  queue: Promise<unknown>
}

class Group {
  readonly members = new Map<string, Member>()
  /** Commits the server accepted, by the epoch they were built on. */
  readonly commits = new Map<number, Uint8Array>()
  /** The latest Welcome sent to the server. */
  welcome: Uint8Array | undefined

  constructor(readonly suite: CiphersuiteName) {}

  member(user: TestUser): Member {
    const member = this.members.get(user.did)
    if (!member) throw new Error(`${user.did} has no MLS state in this group`)
    return member
  }

  add(user: TestUser, member: Omit<Member, 'user' | 'queue'>): void {
    this.members.set(user.did, { user, queue: Promise.resolve(), ...member })
  }

  /** The server took `made`: the committer moves on, the others will read it, the added join by the Welcome. */
  accept(committer: Member, made: Commit, added: TestUser[]): void {
    committer.state = made.state
    this.commits.set(made.epoch, made.data)
    if (!made.welcome) return
    this.welcome = made.welcome
    for (const user of added) this.add(user, { welcome: made.welcome })
  }
}

const groups = new Map<string, Group>()

function groupOf(convoId: string): Group {
  const group = groups.get(convoId)
  if (!group) throw new Error(`no MLS group for conversation ${convoId}`)
  return group
}

/** The latest Welcome the kit sent for a conversation. */
export function welcomeOf(convoId: string): Uint8Array {
  const welcome = groupOf(convoId).welcome
  if (!welcome) throw new Error('no Welcome was sent for this conversation')
  return welcome
}

function exclusive<T>(member: Member, fn: () => Promise<T>): Promise<T> {
  const run = member.queue.then(fn)
  member.queue = run.catch(() => {})
  return run
}

/** A member's state: joined from its Welcome if need be, caught up on the accepted commits. */
async function current(group: Group, member: Member): Promise<ClientState> {
  if (!member.state) {
    if (!member.welcome) throw new Error(`${member.user.did} was never invited`)
    member.state = await joinFromWelcome(member.user, member.welcome, group.suite)
  }
  for (
    let next = group.commits.get(Number(member.state.groupContext.epoch));
    next;
    next = group.commits.get(Number(member.state.groupContext.epoch))
  ) {
    const { state } = await receive(member.state, next, group.suite)
    // A member the commit removed stays where it was: what it sends is stale, as it should be.
    if (state.groupActiveState.kind !== 'active') break
    member.state = state
  }
  return member.state
}

/** `user`'s MLS state in a conversation, up to date with the commits the server accepted. */
export function stateOf(user: TestUser, convoId: string): Promise<ClientState> {
  const group = groupOf(convoId)
  const member = group.member(user)
  return exclusive(member, () => current(group, member))
}

/** A real application message (a PrivateMessage) from `sender`, as an MLSMessage. */
export function message(sender: TestUser, convoId: string, text: Uint8Array = randomBytes(32)): Promise<Uint8Array> {
  const group = groupOf(convoId)
  const member = group.member(sender)
  return exclusive(member, async () => {
    const made = await encrypt(await current(group, member), text)
    member.state = made.state
    return made.data
  })
}

export interface PreparedCommit {
  commit: Uint8Array
  welcome: Uint8Array | undefined
  /** The epoch the commit was built on (its header's). */
  epoch: number
  /** The server took it: the committer moves on, the others will process it, the added join by the Welcome. */
  accepted(): void
}

/** The cipher suite of the kit's group of a conversation. */
export const suiteOf = (convoId: string): CiphersuiteName => groupOf(convoId).suite

/**
 * A commit by `caller` on its current epoch in the kit's group of a
 * conversation: adding the owners of `keyPackages` (`add`, in the same
 * order), removing members (every leaf of each), or neither (an update of its own keys).
 * Nothing changes locally until `accepted()`.
 */
export function commitIn(
  caller: TestUser,
  convoId: string,
  opts: { add?: TestUser[]; keyPackages?: Uint8Array[]; remove?: TestUser[]; publicMessage?: boolean } = {},
): Promise<PreparedCommit> {
  const group = groupOf(convoId)
  const committer = group.member(caller)
  return exclusive(committer, async () => {
    const state = await current(group, committer)
    const proposals = [
      ...(opts.keyPackages ?? []).map(addProposal),
      ...(opts.remove ?? []).flatMap((user) => removeProposals(state, user)),
    ]
    const made = await commit(state, proposals, { publicMessage: opts.publicMessage, suite: group.suite })
    return {
      commit: made.data,
      welcome: made.welcome,
      epoch: made.epoch,
      accepted: () => group.accept(committer, made, opts.add ?? []),
    }
  })
}

export interface NewGroup {
  /** The MLS group id. */
  groupId: Uint8Array
  suite: CiphersuiteName
  /** The commit that added the members, with their Welcome; none without members. */
  adding: Commit | undefined
  /** The server created the conversation: the kit keeps the group under its id. */
  created(convoId: string): void
}

/**
 * A new MLS group of `creator` with the owners of `keyPackages` (`members`,
 * in the same order) added by one commit.
 */
export async function newConvoGroup(
  creator: TestUser,
  members: TestUser[],
  keyPackages: Uint8Array[],
  suite: CiphersuiteName = SUITE,
): Promise<NewGroup> {
  const group = new Group(suite)
  const groupId = randomBytes(16)
  const state = await newGroup(creator.did, groupId, suite)
  group.add(creator, { state })
  const adding = members.length ? await commit(state, keyPackages.map(addProposal), { suite }) : undefined
  return {
    groupId,
    suite,
    adding,
    created(convoId) {
      if (adding) group.accept(group.member(creator), adding, members)
      groups.set(convoId, group)
    },
  }
}
