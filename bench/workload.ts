import { randomBytes, randomUUID } from 'node:crypto'
import { bytesJson, message, NSID, SeedClient, type TestUser, xrpcClient } from '../test/helpers/index.js'
import type { HttpRequest, Xrpc } from './client.js'
import type { SendArgs } from './peer.js'

export const PAGE = 50
/** The text of a short chat message, before MLS encrypts it. */
export const PLAINTEXT_BYTES = 128
/** Application messages made beforehand for each conversation, unless told otherwise. */
const MESSAGES_PER_CONVO = 16
/** The epoch of a conversation created with members (the commit that added them made it 1). */
const EPOCH = 1

export interface Convo {
  id: string
  /** MLS group id, hex. */
  groupId: string
  members: TestUser[]
  /** Real MLS application messages of the group: the bytes, and as they travel in JSON. */
  messages: Array<{ bytes: Uint8Array; json: { $bytes: string } }>
}

const pick = <T>(items: T[]): T => items[Math.floor(Math.random() * items.length)] as T

const sendArgs = (convo: Convo, sender: TestUser, ciphertext: Uint8Array): SendArgs => ({
  convoId: convo.id,
  sender: sender.did,
  groupId: convo.groupId,
  epoch: EPOCH,
  ciphertext,
})

/** Runs `fn` over `items` with at most `concurrency` calls in flight. */
async function forEachConcurrently<T>(
  items: T[],
  concurrency: number,
  fn: (item: T, index: number) => Promise<void>,
): Promise<void> {
  let next = 0
  await Promise.all(
    Array.from({ length: Math.min(concurrency, items.length) }, async () => {
      while (next < items.length) {
        const index = next++
        await fn(items[index] as T, index)
      }
    }),
  )
}

/**
 * `count` conversations through the API, each created by one user with the
 * next `size - 1` users (round the list) as members, so load spread over the
 * conversations is spread over the users too. They are real MLS groups (key
 * packages, the commit adding the members, their Welcome), each with real
 * application messages ready for the load to send. The creator's MLS state
 * makes them all (members joining from the Welcome would cost setup time for
 * nothing): any member sends them, and the server cannot tell.
 */
export async function createConvos(
  url: string,
  users: TestUser[],
  count: number,
  size: number,
  messagesPerConvo = MESSAGES_PER_CONVO,
): Promise<Convo[]> {
  const seed = new SeedClient(xrpcClient(url))
  const convos: Convo[] = []
  const slots = Array.from({ length: count }, (_, i) => i)
  await forEachConcurrently(slots, 8, async (i) => {
    const members = Array.from({ length: size }, (_, k) => users[(i + k) % users.length] as TestUser)
    const [creator, ...invited] = members as [TestUser, ...TestUser[]]
    const created = await seed.createConvo(creator, invited)
    const messages: Convo['messages'] = []
    for (let m = 0; m < messagesPerConvo; m++) {
      const bytes = await message(creator, created.id, randomBytes(PLAINTEXT_BYTES))
      messages.push({ bytes, json: bytesJson(bytes) })
    }
    convos[i] = { id: created.id, groupId: created.groupId, members, messages }
  })
  return convos
}

/** Requests of the load: a random member of a random conversation each time, sending one of its messages. */
export class Workload {
  constructor(
    readonly api: Xrpc,
    readonly convos: Convo[],
  ) {}

  get users(): TestUser[] {
    return [...new Set(this.convos.flatMap((c) => c.members))]
  }

  mintTokens(): Promise<void> {
    return this.api.tokens.mint(this.users, [NSID.sendMessage, NSID.getMessages])
  }

  private pickMessage(convo = pick(this.convos)) {
    const sender = pick(convo.members)
    return { convo, sender, ...pick(convo.messages) }
  }

  /** A typical message the load sends. */
  sample(): Uint8Array {
    return this.pickMessage().bytes
  }

  /** Arguments of the sendMessage service call, for the bench's own pool (no HTTP: what the server would have read of its header). */
  sendArgs(convo?: Convo): SendArgs {
    const picked = this.pickMessage(convo)
    return sendArgs(picked.convo, picked.sender, picked.bytes)
  }

  /** Every (conversation, member, message) the load may send, as service arguments. */
  everySend(): SendArgs[] {
    return this.convos.flatMap((convo) =>
      convo.members.flatMap((sender) => convo.messages.map((m) => sendArgs(convo, sender, m.bytes))),
    )
  }

  /** A sendMessage request; without a key, the bare peer (bench/peer-child.ts) takes the same. */
  sendMessage(withKey: boolean): HttpRequest {
    const { convo, sender, json } = this.pickMessage()
    return this.api.request(sender, NSID.sendMessage, {
      input: {
        convoId: convo.id,
        senderDid: sender.did,
        epoch: EPOCH,
        ciphertext: json,
        ...(withKey ? { idempotencyKey: randomUUID() } : {}),
      },
    })
  }

  getMessages(): HttpRequest {
    const convo = pick(this.convos)
    return this.api.request(pick(convo.members), NSID.getMessages, { params: { convoId: convo.id, limit: PAGE } })
  }
}
