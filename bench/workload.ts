import { randomBytes, randomUUID } from 'node:crypto'
import { bytesJson, NS, randomGroupId, SUITE } from '../test/helpers/mls.js'
import type { TestUser } from '../test/helpers/users.js'
import type { HttpRequest, Xrpc } from './client.js'

export const SEND = `${NS}.sendMessage`
export const GET_MESSAGES = `${NS}.getMessages`
export const PAGE = 50
/** A short MLS application message. */
const CIPHERTEXT_BYTES = 128

export interface Convo {
  id: string
  members: TestUser[]
}

const pick = <T>(items: T[]): T => items[Math.floor(Math.random() * items.length)] as T

/** Runs `fn` over `items` with at most `concurrency` calls in flight. */
export async function forEachConcurrently<T>(
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
 * conversations is spread over the users too.
 */
export async function createConvos(api: Xrpc, users: TestUser[], count: number, size: number): Promise<Convo[]> {
  const convos: Convo[] = []
  const slots = Array.from({ length: count }, (_, i) => i)
  await forEachConcurrently(slots, 8, async (i) => {
    const members = Array.from({ length: size }, (_, k) => users[(i + k) % users.length] as TestUser)
    const [creator, ...invited] = members as [TestUser, ...TestUser[]]
    const created = await api.ok<{ id: string }>(creator, `${NS}.createConvo`, {
      input: { groupId: randomGroupId(), cipherSuite: SUITE, initialMembers: invited.map((m) => m.did) },
    })
    convos[i] = { id: created.id, members }
  })
  return convos
}

/** Requests of the load: a random member of a random conversation each time. */
export class Workload {
  private readonly ciphertexts = Array.from({ length: 256 }, () => randomBytes(CIPHERTEXT_BYTES))
  private readonly ciphertextsJson = this.ciphertexts.map(bytesJson)

  constructor(
    readonly api: Xrpc,
    readonly convos: Convo[],
  ) {}

  get users(): TestUser[] {
    return [...new Set(this.convos.flatMap((c) => c.members))]
  }

  mintTokens(): Promise<void> {
    return this.api.tokens.mint(this.users, [SEND, GET_MESSAGES])
  }

  /** Arguments of the sendMessage service call, for the bench's own pool (no HTTP). */
  sendArgs() {
    const convo = pick(this.convos)
    return { convoId: convo.id, sender: pick(convo.members).did, epoch: 0, ciphertext: pick(this.ciphertexts) }
  }

  sendMessage(withKey: boolean): HttpRequest {
    const convo = pick(this.convos)
    const sender = pick(convo.members)
    return this.api.request(sender, SEND, {
      input: {
        convoId: convo.id,
        senderDid: sender.did,
        epoch: 0,
        ciphertext: pick(this.ciphertextsJson),
        ...(withKey ? { idempotencyKey: randomUUID() } : {}),
      },
    })
  }

  getMessages(): HttpRequest {
    const convo = pick(this.convos)
    return this.api.request(pick(convo.members), GET_MESSAGES, { params: { convoId: convo.id, limit: PAGE } })
  }
}
