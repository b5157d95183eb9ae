/**
 * One user's MLS client for tests about the protocol itself: it keeps its
 * own ts-mls group state and talks to the server as a real client does,
 * reading what the server delivers in order (test/mls/).
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import type { ClientState } from 'ts-mls'
import type { SignatureKeys } from '../../scripts/mls-client.js'
import { NSID } from '../../src/lexicon/types/index.js'
import type { TestApp } from './app.js'
import { base64Bytes, bytesFromJson, encodeBase64 } from '../../src/lexicon/wire.js'
import {
  addProposal,
  bytesJson,
  commit,
  encrypt,
  groupInfoOf,
  headerOf,
  hex,
  joinExternally,
  joinFromWelcome,
  keyPackage,
  newGroup,
  receive,
  SUITE,
  type ExternalJoin,
} from './mls.js'
import { TestUser } from './users.js'
import type { CallArgs, InputOf, OutputOf, XrpcResponse } from './xrpc.js'

const text = (s: string) => new TextEncoder().encode(s)
const read = (bytes: Uint8Array | undefined) => (bytes ? new TextDecoder().decode(bytes) : undefined)

type Method = keyof typeof NSID
type Output<M extends Method> = OutputOf<(typeof NSID)[M]>

type Rejoined = XrpcResponse<Output<'processExternalCommit'>>

export interface PreparedRejoin {
  made: ExternalJoin
  send(): Promise<Rejoined>
}

export class Client {
  state!: ClientState
  private readSince: string | undefined
  /** Messages of earlier epochs were sent before this device (re)joined: it cannot read them. */
  private readFromEpoch = 0

  constructor(
    readonly t: Pick<TestApp, 'call' | 'seed'>,
    readonly user: TestUser,
  ) {}

  static async create(t: Pick<TestApp, 'call' | 'seed'>): Promise<Client> {
    return new Client(t, await TestUser.create())
  }

  call<M extends Method>(method: M, ...opts: CallArgs<(typeof NSID)[M]>): Promise<XrpcResponse<Output<M>>> {
    return this.t.call(this.user, NSID[method], ...opts)
  }

  async publishKeyPackage(opts: { lastResort?: boolean } = {}): Promise<void> {
    assert.equal((await this.t.seed.publishKeyPackage(this.user, await keyPackage(this.user, opts))).status, 200)
  }

  /** The key packages the server hands out for `users`, as bytes. */
  async keyPackagesOf(...users: Client[]): Promise<Uint8Array[]> {
    const res = await this.call('getKeyPackages', {
      params: { dids: users.map((u) => u.user.did) },
    })
    assert.equal(res.status, 200)
    return users.map((u) => base64Bytes(res.body.keyPackages.find((kp) => kp.did === u.user.did)!.keyPackage))
  }

  /**
   * Creates a conversation with `members`, added by one commit and their
   * Welcome, and the GroupInfo of the epoch it starts at (unless told not
   * to); the members join (unless told not to). They publish a key package
   * for it first, unless told not to (they have some on the server).
   * Answers the conversation's id.
   */
  async createConvo(
    members: Client[],
    opts: { groupInfo?: boolean; publish?: boolean; join?: boolean } = {},
  ): Promise<string> {
    if (opts.publish !== false) for (const member of members) await member.publishKeyPackage()
    const groupId = randomBytes(16)
    const state = await newGroup(this.user.did, groupId)
    const creation = await commit(state, (await this.keyPackagesOf(...members)).map(addProposal))
    const created = await this.call('createConvo', {
      input: {
        groupId: hex(groupId),
        cipherSuite: SUITE,
        initialMembers: members.map((m) => m.user.did),
        welcomeMessage: encodeBase64(creation.welcome!),
        commit: encodeBase64(creation.data),
        ...(opts.groupInfo === false ? {} : { groupInfo: encodeBase64(await groupInfoOf(creation.state)) }),
      },
    })
    assert.equal(created.status, 200, JSON.stringify(created.body))
    this.state = creation.state
    if (opts.join !== false) for (const member of members) await member.join(created.body.id)
    return created.body.id
  }

  /** Fetches its Welcome, joins with it, confirms. */
  async join(convoId: string): Promise<void> {
    const res = await this.call('getWelcome', { params: { convoId } })
    assert.equal(res.status, 200)
    this.state = await joinFromWelcome(this.user, base64Bytes(res.body.welcome))
    assert.deepEqual((await this.call('confirmWelcome', { input: { convoId, success: true } })).body, {
      confirmed: true,
    })
  }

  /** Everything the server has for it since last time, in order: it applies commits and proposals, and decrypts messages. */
  async sync(convoId: string): Promise<Array<string | undefined>> {
    const page = await this.call('getMessages', {
      params: { convoId, limit: 100, ...(this.readSince ? { sinceMessage: this.readSince } : {}) },
    })
    assert.equal(page.status, 200)
    const texts: Array<string | undefined> = []
    for (const m of page.body.messages) {
      this.readSince = m.id
      // Its own messages it applied when it sent them.
      if (m.sender === this.user.did || m.epoch < this.readFromEpoch) continue
      const data = bytesFromJson(m.ciphertext)
      // A commit it applied already (fetched with getCommits) comes again in its place.
      if (m.epoch < this.epoch && headerOf(data).contentType === 'commit') continue
      const received = await receive(this.state, data)
      this.state = received.state
      if (received.text) texts.push(read(received.text))
    }
    return texts
  }

  /** Applies the commits of epochs from its own on, fetched with getCommits. */
  async catchUp(convoId: string): Promise<void> {
    for (const c of await this.commits(convoId, this.epoch)) {
      if (c.epoch === this.epoch) this.state = (await receive(this.state, bytesFromJson(c.commitData))).state
    }
  }

  async commits(convoId: string, fromEpoch = 0) {
    const res = await this.call('getCommits', { params: { convoId, fromEpoch } })
    assert.equal(res.status, 200)
    return res.body.commits
  }

  async say(convoId: string, words: string) {
    const made = await encrypt(this.state, text(words))
    this.state = made.state
    return this.send(convoId, made.data)
  }

  send(convoId: string, data: Uint8Array, extra: Partial<InputOf<typeof NSID.sendMessage>> = {}) {
    return this.call('sendMessage', {
      input: {
        convoId,
        senderDid: this.user.did,
        epoch: Number(this.state.groupContext.epoch),
        ciphertext: bytesJson(data),
        ...extra,
      },
    })
  }

  /** The GroupInfo of its current epoch, as an MLSMessage. */
  groupInfo(): Promise<Uint8Array> {
    return groupInfoOf(this.state)
  }

  /** The device loses everything it knew of its groups (a reinstall). */
  forget(): void {
    this.state = undefined as unknown as ClientState
    this.readSince = undefined
  }

  /**
   * Rejoins by external commit, as a device that lost its state does:
   * fetches the GroupInfo and builds the commit on it; `send` sends it with
   * the GroupInfo of the epoch it leads to, and adopts the new state when
   * the server took it.
   */
  async prepareRejoin(
    convoId: string,
    opts: { identity?: string; signatureKeys?: SignatureKeys } = {},
  ): Promise<PreparedRejoin> {
    const info = await this.call('getGroupInfo', { params: { convoId } })
    assert.equal(info.status, 200, JSON.stringify(info.body))
    const made = await joinExternally(this.user, base64Bytes(info.body.groupInfo), opts)
    const input = { convoId, externalCommit: encodeBase64(made.commit), groupInfo: encodeBase64(made.groupInfo) }
    return {
      made,
      send: async () => {
        const res = await this.call('processExternalCommit', { input })
        if (res.status === 200) {
          this.state = made.state
          this.readFromEpoch = res.body.epoch
        }
        return res
      },
    }
  }

  async rejoin(convoId: string): Promise<Rejoined> {
    return (await this.prepareRejoin(convoId)).send()
  }

  get epoch(): number {
    return Number(this.state.groupContext.epoch)
  }
}
