/**
 * The steps of a scenario, each a real request to the server, for tests and
 * benchmarks that need conversations, members and messages to be there
 * before what they are about: in the shape of atproto's SeedClient
 * (packages/dev-env/src/seed/client.ts), one method per step, the acting
 * user first. The MLS it sends is real, made and kept by the kit's groups
 * (mls.ts).
 */
import type { CiphersuiteName } from 'ts-mls'
import { NSID, type Nsid } from '../../src/lexicon/types/index.js'
import { base64Bytes, encodeBase64 } from '../../src/lexicon/wire.js'
import {
  bytesJson,
  commitIn,
  epochOf,
  hex,
  keyPackage,
  message,
  newConvoGroup,
  SUITE,
  suiteOf,
  type PreparedCommit,
} from './mls.js'
import type { TestUser } from './users.js'
import type { InputOf, OutputOf, XrpcCall, XrpcResponse } from './xrpc.js'

type CreateConvoInput = InputOf<typeof NSID.createConvo>

export interface PreparedConvo {
  /** The createConvo input: group id, cipher suite, members and their Welcome. */
  input: CreateConvoInput
  /** The commit that added the members, for a test that sends it too. */
  commit: Uint8Array | undefined
  /** The server created it: the kit keeps the group under the conversation's id. */
  created(convo: { id: string }): void
}

export interface CommitOptions {
  add?: TestUser[]
  /** Key packages of `add` (in its order) the caller already claimed; default: claimed now. */
  keyPackages?: Uint8Array[]
  remove?: TestUser[]
  /** A PublicMessage instead of a PrivateMessage. */
  publicMessage?: boolean
}

export interface SendOptions {
  /** MLS bytes to send as they are; default: a new application message from the sender. */
  ciphertext?: Uint8Array
  /** The declared epoch; default: the one in the message's header. */
  epoch?: number
  idempotencyKey?: string
  /** The sender's device that sends it (its push goes to the sender's other devices). */
  deviceId?: string
  headers?: Record<string, string>
}

/** addMembers' input: `prepared`, the commit adding `users`, with its Welcome. */
export const addMembersInput = (convoId: string, users: TestUser[], prepared: PreparedCommit) => ({
  convoId,
  didList: users.map((u) => u.did),
  commit: encodeBase64(prepared.commit),
  welcomeMessage: encodeBase64(prepared.welcome as Uint8Array),
  epoch: prepared.epoch,
})

/** Fails the step (not the test's assertion): a scenario that cannot be set up is not what the test is about. */
function ok<N extends Nsid>(nsid: N, res: XrpcResponse<OutputOf<N>>): OutputOf<N> {
  if (res.status !== 200) throw new Error(`${nsid}: ${res.status} ${JSON.stringify(res.body)}`)
  return res.body
}

/** Calls the server's methods as its users, over `api` (a TestApp, or xrpcClient(url)). */
export class SeedClient {
  constructor(readonly api: { call: XrpcCall }) {}

  /** Publishes a key package of `user`'s device (a new one by default). */
  async publishKeyPackage(
    user: TestUser,
    data?: Uint8Array,
    extra: Partial<InputOf<typeof NSID.publishKeyPackage>> = {},
  ) {
    return this.api.call(user, NSID.publishKeyPackage, {
      input: { keyPackage: encodeBase64(data ?? (await keyPackage(user))), cipherSuite: SUITE, ...extra },
    })
  }

  /**
   * One key package per user, as `caller` gets them to add those users: each
   * user publishes a fresh one, then the caller claims them (getKeyPackages
   * hands out the oldest available, which need not be that one).
   */
  async claimKeyPackages(caller: TestUser, users: TestUser[], suite: CiphersuiteName = SUITE): Promise<Uint8Array[]> {
    for (const user of users) {
      ok(
        NSID.publishKeyPackage,
        await this.publishKeyPackage(user, await keyPackage(user, { suite }), { cipherSuite: suite }),
      )
    }
    const byDid = new Map<string, Uint8Array>()
    // getKeyPackages takes 100 DIDs at a time.
    for (let i = 0; i < users.length; i += 100) {
      const claimed = ok(
        NSID.getKeyPackages,
        await this.api.call(caller, NSID.getKeyPackages, {
          params: { dids: users.slice(i, i + 100).map((u) => u.did), cipherSuite: suite },
        }),
      )
      for (const kp of claimed.keyPackages) byDid.set(kp.did, base64Bytes(kp.keyPackage))
    }
    return users.map((user) => {
      const claimedOne = byDid.get(user.did)
      if (!claimedOne) throw new Error(`getKeyPackages: none for ${user.did}`)
      return claimedOne
    })
  }

  /**
   * A new MLS group of `creator` with `members` added by one commit (their
   * key packages published and claimed through the server), and the
   * createConvo input for it; `extra` is merged into the input.
   */
  async prepareConvo(
    creator: TestUser,
    members: TestUser[] = [],
    extra: Partial<CreateConvoInput> = {},
    opts: { suite?: CiphersuiteName; keyPackages?: Uint8Array[] } = {},
  ): Promise<PreparedConvo> {
    const suite = opts.suite ?? SUITE
    const keyPackages = opts.keyPackages ?? (members.length ? await this.claimKeyPackages(creator, members, suite) : [])
    const group = await newConvoGroup(creator, members, keyPackages, suite)
    const welcome = group.adding?.welcome
    return {
      input: {
        groupId: hex(group.groupId),
        cipherSuite: suite,
        ...(welcome ? { initialMembers: members.map((m) => m.did), welcomeMessage: encodeBase64(welcome) } : {}),
        ...extra,
      },
      commit: group.adding?.data,
      created: (convo) => group.created(convo.id),
    }
  }

  /** Creates a conversation with a real MLS group; throws unless it worked. */
  async createConvo(creator: TestUser, members: TestUser[] = [], extra: Partial<CreateConvoInput> = {}) {
    const prepared = await this.prepareConvo(creator, members, extra)
    const convo = ok(NSID.createConvo, await this.api.call(creator, NSID.createConvo, { input: prepared.input }))
    prepared.created(convo)
    return convo
  }

  /**
   * A commit by `caller` on its current epoch: adding users (whose key
   * packages it claims from the server), removing members, or neither (an
   * update of its own keys). Nothing changes locally until `accepted()`.
   */
  async prepareCommit(caller: TestUser, convoId: string, opts: CommitOptions = {}): Promise<PreparedCommit> {
    const add = opts.add ?? []
    const keyPackages =
      opts.keyPackages ?? (add.length ? await this.claimKeyPackages(caller, add, suiteOf(convoId)) : [])
    return commitIn(caller, convoId, { ...opts, add, keyPackages })
  }

  /** addMembers with a real commit and Welcome for `users`. */
  async addMembers(caller: TestUser, convoId: string, users: TestUser[], extra: { idempotencyKey?: string } = {}) {
    const prepared = await this.prepareCommit(caller, convoId, { add: users })
    return sent(
      prepared,
      await this.api.call(caller, NSID.addMembers, {
        input: { ...addMembersInput(convoId, users, prepared), ...extra },
      }),
    )
  }

  /** leaveConvo removing `target` with `caller`'s commit of the removal. */
  async removeMember(caller: TestUser, convoId: string, target: TestUser) {
    const prepared = await this.prepareCommit(caller, convoId, { remove: [target] })
    return sent(
      prepared,
      await this.api.call(caller, NSID.leaveConvo, {
        input: { convoId, targetDid: target.did, commit: encodeBase64(prepared.commit), epoch: prepared.epoch },
      }),
    )
  }

  /** A commit of `caller`'s own key update (no membership change), sent with sendMessage. */
  async commitUpdate(caller: TestUser, convoId: string) {
    const prepared = await this.prepareCommit(caller, convoId)
    return sent(prepared, await this.sendMessage(caller, convoId, { ciphertext: prepared.commit }))
  }

  /** Sends an application message of `sender`'s (a new one by default). */
  async sendMessage(sender: TestUser, convoId: string, opts: SendOptions = {}) {
    const ciphertext = opts.ciphertext ?? (await message(sender, convoId))
    return this.api.call(sender, NSID.sendMessage, {
      input: {
        convoId,
        senderDid: sender.did,
        epoch: opts.epoch ?? epochOf(ciphertext),
        ciphertext: bytesJson(ciphertext),
        ...(opts.idempotencyKey !== undefined ? { idempotencyKey: opts.idempotencyKey } : {}),
        ...(opts.deviceId !== undefined ? { deviceId: opts.deviceId } : {}),
      },
      ...(opts.headers ? { headers: opts.headers } : {}),
    })
  }

  /**
   * A real message of `sender` from an epoch the conversation has left: made,
   * then overtaken by a commit of `sender`'s through the server. Sending it
   * gets 409 EpochMismatch.
   */
  async staleMessage(sender: TestUser, convoId: string): Promise<Uint8Array> {
    const stale = await message(sender, convoId)
    const committed = await this.commitUpdate(sender, convoId)
    if (committed.status !== 200) throw new Error(`commit: ${committed.status} ${JSON.stringify(committed.body)}`)
    return stale
  }
}

/** The answer to a prepared commit; the kit records the commit when the server took it. */
function sent<T>(prepared: PreparedCommit, res: XrpcResponse<T>): XrpcResponse<T> {
  if (res.status === 200) prepared.accepted()
  return res
}
