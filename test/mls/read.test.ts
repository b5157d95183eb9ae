import { randomBytes } from 'node:crypto'
import {
  createApplicationMessage,
  createCommit,
  createGroup,
  createProposal,
  decodeMlsMessage,
  encodeMlsMessage,
  generateKeyPackage,
  defaultCapabilities,
  type CiphersuiteName,
  type ClientState,
  type Commit,
  type KeyPackage,
  type LeafNode,
} from 'ts-mls'
import { encodeGroupInfo } from 'ts-mls/groupInfo.js'
import { encodeKeyPackage } from 'ts-mls/keyPackage.js'
import { encodeWelcome } from 'ts-mls/welcome.js'
import { describe, expect, it } from 'vitest'
import {
  CIPHER_SUITES,
  MlsDecodeError,
  readExternalCommit,
  readGroupInfo,
  readKeyPackage,
  readMessageHeader,
  readWelcome,
  type MessageHeader,
} from '../../src/mls/index.js'
import {
  groupInfoOf,
  hex,
  joinExternally,
  keyPackage,
  keyPackageRef,
  lifetimeFromNow,
  suiteImpl,
  TestUser,
} from '../helpers/index.js'

const unwrapKeyPackage = (data: Uint8Array): KeyPackage => {
  const message = decodeMlsMessage(data, 0)?.[0]
  if (message?.wireformat !== 'mls_key_package') throw new Error('not a key package')
  return message.keyPackage
}

/** A group of one with a second member added: its state, the commit and the Welcome. */
async function groupWithOther(suite: CiphersuiteName = 'MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519') {
  const cs = await suiteImpl(suite)
  const identity = (name: string) => ({ credentialType: 'basic' as const, identity: new TextEncoder().encode(name) })
  const lifetime = lifetimeFromNow(0n, 3600n)
  const alice = await generateKeyPackage(identity('alice'), defaultCapabilities(), lifetime, [], cs)
  const bob = await generateKeyPackage(identity('bob'), defaultCapabilities(), lifetime, [], cs)
  const groupId = randomBytes(12)
  const state = await createGroup(groupId, alice.publicPackage, alice.privatePackage, [], cs)
  const added = await createCommit(
    { state, cipherSuite: cs },
    { extraProposals: [{ proposalType: 'add', add: { keyPackage: bob.publicPackage } }] },
  )
  return { cs, groupId, state: added.newState, commit: added.commit, welcome: added.welcome!, bob: bob.publicPackage }
}

describe('readKeyPackage', () => {
  it.each(CIPHER_SUITES)(
    'reads a key package of %s: suite, identity, lifetime, KeyPackageRef, valid signature',
    async (suite) => {
      const user = await TestUser.create()
      const lifetime = lifetimeFromNow(-10n, 7200n)
      const data = await keyPackage(user, { suite, lifetime })
      const facts = await readKeyPackage(data)
      expect(facts).toEqual({
        cipherSuite: suite,
        identity: user.did,
        notBefore: Number(lifetime.notBefore),
        notAfter: Number(lifetime.notAfter),
        ref: await keyPackageRef(data, suite),
        signatureKey: unwrapKeyPackage(data).leafNode.signaturePublicKey,
        signatureValid: true,
        lastResort: false,
      })
      // The bare struct (as OpenMLS sends key packages) reads the same.
      expect(await readKeyPackage(encodeKeyPackage(unwrapKeyPackage(data)))).toEqual(facts)
    },
  )

  it('reports a signature that does not verify, and a credential that is not basic', async () => {
    const data = await keyPackage(await TestUser.create())
    const tampered = Uint8Array.from(data)
    tampered[tampered.length - 1]! ^= 1
    expect((await readKeyPackage(tampered)).signatureValid).toBe(false)

    const kp = unwrapKeyPackage(data)
    const x509 = {
      ...kp,
      leafNode: { ...kp.leafNode, credential: { credentialType: 'x509' as const, certificates: [randomBytes(20)] } },
    }
    expect((await readKeyPackage(encodeKeyPackage(x509))).identity).toBeUndefined()
  })

  it('sees the last_resort extension', async () => {
    const user = await TestUser.create()
    expect(await readKeyPackage(await keyPackage(user, { lastResort: true }))).toMatchObject({
      identity: user.did,
      lastResort: true,
      signatureValid: true,
    })
  })

  it('refuses bytes that are not exactly one key package', async () => {
    const data = await keyPackage(await TestUser.create())
    for (const bad of [
      randomBytes(200),
      data.subarray(0, data.length - 1),
      Buffer.concat([data, Buffer.from([0])]),
      new Uint8Array(),
    ]) {
      await expect(readKeyPackage(bad)).rejects.toThrow(MlsDecodeError)
    }
  })
})

describe('readMessageHeader', () => {
  it('reads group id, epoch and content type of PrivateMessages and PublicMessages', async () => {
    const { cs, groupId, state, commit } = await groupWithOther()
    expect(readMessageHeader(encodeMlsMessage(commit))).toEqual({
      wireFormat: 'PrivateMessage',
      groupId: hex(groupId),
      epoch: 0,
      contentType: 'commit',
    })
    const app = await createApplicationMessage(state, new TextEncoder().encode('hi'), cs)
    const appBytes = encodeMlsMessage({
      version: 'mls10',
      wireformat: 'mls_private_message',
      privateMessage: app.privateMessage,
    })
    expect(readMessageHeader(appBytes)).toEqual({
      wireFormat: 'PrivateMessage',
      groupId: hex(groupId),
      epoch: 1,
      contentType: 'application',
    })

    const proposal = await createProposal(state, true, { proposalType: 'remove', remove: { removed: 1 } }, cs)
    expect(readMessageHeader(encodeMlsMessage(proposal.message))).toEqual({
      wireFormat: 'PublicMessage',
      groupId: hex(groupId),
      epoch: 1,
      contentType: 'proposal',
    })
    const update = await createCommit({ state: state as ClientState, cipherSuite: cs }, { wireAsPublicMessage: true })
    expect(readMessageHeader(encodeMlsMessage(update.commit))).toMatchObject({
      wireFormat: 'PublicMessage',
      epoch: 1,
      contentType: 'commit',
    })
  })

  it('refuses anything but one whole PublicMessage or PrivateMessage', async () => {
    const { commit, welcome, bob } = await groupWithOther()
    const bytes = encodeMlsMessage(commit)
    const others = [
      randomBytes(100),
      bytes.subarray(0, bytes.length - 3),
      Buffer.concat([bytes, Buffer.from([7])]),
      encodeMlsMessage({ version: 'mls10', wireformat: 'mls_welcome', welcome }),
      encodeMlsMessage({ version: 'mls10', wireformat: 'mls_key_package', keyPackage: bob }),
    ]
    for (const bad of others) expect(() => readMessageHeader(bad)).toThrow(MlsDecodeError)
  })
})

/** What ts-mls's full decoder reads of a message: the reference the server's own PrivateMessage reader is held to. */
function decodedHeader(bytes: Uint8Array): MessageHeader | 'refused' {
  try {
    const [message, length] = decodeMlsMessage(bytes, 0) ?? []
    if (!message || length !== bytes.length || message.wireformat !== 'mls_private_message') return 'refused'
    const { groupId, epoch, contentType } = message.privateMessage
    // The server's own rule: epochs beyond 2^53 - 1 are refused.
    if (epoch > BigInt(Number.MAX_SAFE_INTEGER)) return 'refused'
    return { wireFormat: 'PrivateMessage', groupId: hex(groupId), epoch: Number(epoch), contentType }
  } catch {
    return 'refused'
  }
}

function serverHeader(bytes: Uint8Array): MessageHeader | 'refused' {
  try {
    return readMessageHeader(bytes)
  } catch (err) {
    if (err instanceof MlsDecodeError) return 'refused'
    throw err
  }
}

describe('the PrivateMessage header reader', () => {
  it('reads what ts-mls reads, of whole messages and of every damaged one', async () => {
    const { cs, state, commit: added } = await groupWithOther()
    const made = (text: Uint8Array) => createApplicationMessage(state, text, cs)
    const privateOf = (pm: Awaited<ReturnType<typeof made>>['privateMessage']) =>
      encodeMlsMessage({ version: 'mls10', wireformat: 'mls_private_message', privateMessage: pm })
    const proposal = await createProposal(state, false, { proposalType: 'remove', remove: { removed: 1 } }, cs)
    const samples = [
      privateOf((await made(randomBytes(100))).privateMessage),
      // Lengths past 16383 take the 4-byte form.
      privateOf((await made(randomBytes(20_000))).privateMessage),
      encodeMlsMessage(added),
      encodeMlsMessage(proposal.message),
    ]
    let compared = 0
    for (const sample of samples) {
      const damaged: Uint8Array[] = [sample, Buffer.concat([sample, Buffer.from([0])])]
      for (let end = 0; end < Math.min(sample.length, 600); end++) damaged.push(sample.subarray(0, end))
      // The header and the length prefixes, each byte set to the values that change their meaning.
      for (let at = 0; at < 64; at++) {
        for (const value of [0x00, 0xff, sample[at]! ^ 0x40, sample[at]! ^ 0x80, sample[at]! ^ 0x01]) {
          const copy = Uint8Array.from(sample)
          copy[at] = value
          damaged.push(copy)
        }
      }
      for (const bytes of damaged) {
        expect(serverHeader(bytes), `${hex(bytes.subarray(0, 40))}... (${bytes.length} bytes)`).toEqual(
          decodedHeader(bytes),
        )
        compared++
      }
    }
    expect(compared).toBeGreaterThan(2000)
  })
})

describe('readWelcome', () => {
  it('reads the cipher suite and the KeyPackageRef of each new member, framed or bare', async () => {
    const { cs, welcome, bob } = await groupWithOther('MLS_128_DHKEMP256_AES128GCM_SHA256_P256')
    const ref = await keyPackageRef(
      encodeMlsMessage({ version: 'mls10', wireformat: 'mls_key_package', keyPackage: bob }),
      cs.name,
    )
    const facts = { cipherSuite: 'MLS_128_DHKEMP256_AES128GCM_SHA256_P256', keyPackageRefs: [ref] }
    expect(readWelcome(encodeMlsMessage({ version: 'mls10', wireformat: 'mls_welcome', welcome }))).toEqual(facts)
    expect(readWelcome(encodeWelcome(welcome))).toEqual(facts)
    expect(() => readWelcome(randomBytes(64))).toThrow(MlsDecodeError)
  })
})

describe('readGroupInfo', () => {
  it('reads group id, epoch, cipher suite and whether external_pub is there, framed or bare', async () => {
    const { groupId, state } = await groupWithOther()
    const data = await groupInfoOf(state)
    const facts = {
      groupId: hex(groupId),
      epoch: 1,
      cipherSuite: 'MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519',
      externalPub: true,
    }
    expect(readGroupInfo(data)).toEqual(facts)
    const message = decodeMlsMessage(data, 0)?.[0]
    if (message?.wireformat !== 'mls_group_info') throw new Error('not a GroupInfo')
    expect(readGroupInfo(encodeGroupInfo(message.groupInfo))).toEqual(facts)
    const withoutExternalPub = {
      ...message.groupInfo,
      extensions: message.groupInfo.extensions.filter((e) => e.extensionType !== 'external_pub'),
    }
    expect(readGroupInfo(encodeGroupInfo(withoutExternalPub))).toEqual({ ...facts, externalPub: false })
  })

  it('refuses anything but one whole GroupInfo', async () => {
    const { state, welcome } = await groupWithOther()
    const data = await groupInfoOf(state)
    const others = [
      randomBytes(100),
      data.subarray(0, data.length - 1),
      Buffer.concat([data, Buffer.from([0])]),
      encodeMlsMessage({ version: 'mls10', wireformat: 'mls_welcome', welcome }),
    ]
    for (const bad of others) expect(() => readGroupInfo(bad)).toThrow(MlsDecodeError)
  })
})

describe('readExternalCommit', () => {
  /** An external commit of bob's, who lost his state, and its commit to tamper with. */
  async function externalCommit() {
    const { groupId, state } = await groupWithOther()
    const made = await joinExternally(await TestUser.create(), await groupInfoOf(state), { identity: 'bob' })
    const message = decodeMlsMessage(made.commit, 0)?.[0]
    if (message?.wireformat !== 'mls_public_message') throw new Error('not a PublicMessage')
    const { publicMessage } = message
    const content = publicMessage.content
    if (content.contentType !== 'commit') throw new Error('not a commit')
    /** The same message with its commit changed (the signature no longer verifies; the server does not check it). */
    const withCommit = (commit: Partial<Commit>) =>
      encodeMlsMessage({
        ...message,
        publicMessage: { ...publicMessage, content: { ...content, commit: { ...content.commit, ...commit } } },
      })
    return { groupId, made, commit: content.commit, withCommit }
  }

  it("reads group id, epoch and the identity of the joiner's new leaf", async () => {
    const { groupId, made, commit } = await externalCommit()
    // Bob's old leaf goes (resync), his new one comes with the path.
    expect(commit.proposals.map((p) => p.proposalOrRefType === 'proposal' && p.proposal.proposalType)).toEqual([
      'remove',
      'external_init',
    ])
    expect(readExternalCommit(made.commit)).toEqual({
      groupId: hex(groupId),
      epoch: 1,
      joinerIdentity: 'bob',
      // The key of the leaf its new key package brought: which of bob's devices joins.
      joinerSignatureKey: made.state.ratchetTree.flatMap((node) =>
        node?.nodeType === 'leaf' && new TextDecoder().decode(credentialIdentity(node.leaf)) === 'bob'
          ? [node.leaf.signaturePublicKey]
          : [],
      )[0],
    })
    // It is a commit like any other to the header reader.
    expect(readMessageHeader(made.commit)).toEqual({
      wireFormat: 'PublicMessage',
      groupId: hex(groupId),
      epoch: 1,
      contentType: 'commit',
    })
  })

  it('refuses commits that are not external, and external commits that do more than bring in their sender', async () => {
    const { cs, state } = await groupWithOther()
    const { commit, withCommit } = await externalCommit()
    const [remove, externalInit] = commit.proposals
    const add = {
      proposalOrRefType: 'proposal' as const,
      proposal: { proposalType: 'add' as const, add: { keyPackage: (await groupWithOther()).bob } },
    }
    const cases: Array<[string, Uint8Array, RegExp]> = [
      [
        "a member's commit",
        encodeMlsMessage((await createCommit({ state, cipherSuite: cs }, { wireAsPublicMessage: true })).commit),
        /not by a new member/,
      ],
      [
        'a PrivateMessage',
        encodeMlsMessage((await createCommit({ state, cipherSuite: cs })).commit),
        /not a PublicMessage/,
      ],
      ['no UpdatePath', withCommit({ path: undefined }), /without an UpdatePath/],
      ['no ExternalInit', withCommit({ proposals: [remove!] }), /exactly one ExternalInit/],
      ['two ExternalInits', withCommit({ proposals: [externalInit!, externalInit!] }), /exactly one ExternalInit/],
      ['two Removes', withCommit({ proposals: [remove!, remove!, externalInit!] }), /at most one leaf/],
      ['an Add', withCommit({ proposals: [externalInit!, add] }), /type add/],
      [
        'a proposal by reference',
        withCommit({ proposals: [externalInit!, { proposalOrRefType: 'reference', reference: randomBytes(32) }] }),
        /by value only/,
      ],
    ]
    for (const [what, bytes, reason] of cases) expect(() => readExternalCommit(bytes), what).toThrow(reason)
    // Each refusal is about the one change: the untouched commit reads.
    expect(readExternalCommit(withCommit({}))).toMatchObject({ epoch: 1 })
  })
})

const credentialIdentity = (leaf: LeafNode) =>
  leaf.credential.credentialType === 'basic' ? leaf.credential.identity : new Uint8Array()
