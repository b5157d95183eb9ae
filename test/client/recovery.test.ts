import type { ClientState } from 'ts-mls'
import { describe, expect, it } from 'vitest'
import { MlsClient, XrpcClientError, type ExternalCommitBuilder } from '../../src/client/index.js'
import {
  Client,
  commit,
  encodeBase64,
  encrypt,
  groupInfoOf,
  joinExternally,
  joinFromWelcome,
  receive,
  type TestUser,
} from '../helpers/index.js'
import { testAppForFile } from '../helpers/per-file.js'

const t = testAppForFile()

const sdkOf = (user: TestUser) =>
  new MlsClient({
    serviceUrl: t.url,
    token: (nsid) => user.token(nsid),
    retry: { maxAttempts: 3, sleep: async () => {} },
  })
const text = (s: string) => new TextEncoder().encode(s)

/**
 * An app on the SDK with ts-mls as its MLS library: the SDK carries the
 * bytes, the app keeps the group state and passes its MLS operations in.
 */
class App {
  sdk: MlsClient
  state: ClientState | undefined
  builds = 0

  constructor(readonly user: TestUser) {
    this.sdk = sdkOf(user)
  }

  /** A reinstall: no stores, no group state. */
  loseEverything(): void {
    this.sdk = sdkOf(this.user)
    this.state = undefined
  }

  readonly processWelcome = async (welcome: Uint8Array) => {
    this.state = await joinFromWelcome(this.user, welcome)
  }

  readonly buildExternalCommit: ExternalCommitBuilder = async (groupInfo) => {
    this.builds++
    const made = await joinExternally(this.user, groupInfo)
    return { commit: made.commit, groupInfo: made.groupInfo, accepted: () => void (this.state = made.state) }
  }

  /** Decrypts what others said in the conversation since `epoch` (what it can read). */
  async read(convoId: string, fromEpoch: number): Promise<string[]> {
    const { messages } = await this.sdk.getMessages({ convoId, limit: 100 })
    const texts: string[] = []
    for (const m of messages.filter((m) => m.sender !== this.user.did && m.epoch >= fromEpoch)) {
      const received = await receive(this.state as ClientState, m.ciphertext)
      this.state = received.state
      if (received.text) texts.push(new TextDecoder().decode(received.text))
    }
    return texts
  }

  async say(convoId: string, words: string): Promise<void> {
    const made = await encrypt(this.state as ClientState, text(words))
    this.state = made.state
    await this.sdk.sendMessage({
      convoId,
      senderDid: this.user.did,
      epoch: Number(made.state.groupContext.epoch),
      ciphertext: made.data,
    })
  }
}

describe('recovering a conversation through the SDK', () => {
  it('a device that lost everything gets back in: the Welcome is gone, so the Welcome recipe rejoins by external commit', async () => {
    const alice = await Client.create(t)
    const bobUser = (await Client.create(t)).user
    const bob = new App(bobUser)
    // Alice creates the group with bob; bob joins through the SDK's Welcome recipe.
    const convo = await alice.createConvo([new Client(t, bobUser)], { join: false })
    expect(await bob.sdk.joinFromWelcome(convo, bob.processWelcome, bob.buildExternalCommit)).toBe('welcome')
    await alice.say(convo, 'hello bob')
    expect(await bob.read(convo, 1)).toEqual(['hello bob'])

    // The phone is wiped: no MLS state, no stored Welcome, no pending writes.
    bob.loseEverything()
    expect(await bob.sdk.retryFailedWelcome(convo, bob.processWelcome, bob.buildExternalCommit)).toBe('externalCommit')
    expect(bob.builds).toBe(1)
    expect(Number(bob.state!.groupContext.epoch)).toBe(2)
    expect(await bob.sdk.pendingStore.list()).toEqual([])

    // Alice applies his commit from getCommits; they talk again, both ways.
    await alice.catchUp(convo)
    await alice.say(convo, 'welcome back')
    expect(await bob.read(convo, 2)).toEqual(['welcome back'])
    await bob.say(convo, 'thanks')
    expect(await alice.sync(convo)).toEqual(['thanks'])
  })

  it('rebuilds on the new epoch when another commit came first, and says why it cannot when it cannot', async () => {
    const alice = await Client.create(t)
    const bobUser = (await Client.create(t)).user
    // Bob never processed his Welcome (it is still pending): he too rejoins by external commit.
    const convo = await alice.createConvo([new Client(t, bobUser)], { join: false })
    const bob = new App(bobUser)

    // While bob builds on epoch 1, alice commits (with the GroupInfo of epoch 2).
    const overtaken: ExternalCommitBuilder = async (groupInfo, epoch) => {
      if (bob.builds === 0) {
        const update = await commit(alice.state)
        expect(
          (await alice.send(convo, update.data, { groupInfo: encodeBase64(await groupInfoOf(update.state)) })).status,
        ).toBe(200)
        alice.state = update.state
      }
      expect(epoch).toBe(bob.builds + 1)
      return bob.buildExternalCommit(groupInfo, epoch)
    }
    expect(await bob.sdk.recoverConversation(convo, overtaken)).toMatchObject({ epoch: 3 })
    expect(bob.builds).toBe(2)
    await alice.catchUp(convo)
    await alice.say(convo, 'made it')
    expect(await bob.read(convo, 3)).toEqual(['made it'])

    // A commit without a GroupInfo leaves none to build on; a former member cannot rejoin at all.
    const update = await commit(alice.state)
    expect((await alice.send(convo, update.data)).status).toBe(200)
    const unavailable = await bob.sdk.recoverConversation(convo, bob.buildExternalCommit).catch((err: unknown) => err)
    expect(unavailable).toBeInstanceOf(XrpcClientError)
    expect((unavailable as XrpcClientError).error).toBe('GroupInfoUnavailable')
    await bob.sdk.leaveConvo({ convoId: convo })
    const left = await bob.sdk.recoverConversation(convo, bob.buildExternalCommit).catch((err: unknown) => err)
    expect((left as XrpcClientError).error).toBe('NotMember')
    expect(await bob.sdk.pendingStore.list()).toEqual([])
  })
})
