import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { FilePendingStore, MlsClient, type MessageView } from '../../src/client/index.js'
import {
  type FaultProxy,
  message,
  startFaultProxy,
  startTestApp,
  type TestApp,
  TestUser,
  welcomeOf,
} from '../helpers/index.js'

const SENDS = 500
const CONCURRENCY = 16

let t: TestApp
let proxy: FaultProxy
let dir: string

beforeAll(async () => {
  t = await startTestApp()
  proxy = await startFaultProxy({ target: t.url, faultRate: 0.2, seed: 1009 })
  dir = await mkdtemp(path.join(tmpdir(), 'mls-client-faults-'))
})
afterAll(async () => {
  await proxy?.close()
  await t?.close()
  if (dir) await rm(dir, { recursive: true, force: true })
})

/** A client through the faulty proxy, with its pending writes in a file of its own. */
const faultyClient = (user: TestUser, name: string) =>
  new MlsClient({
    serviceUrl: proxy.url,
    token: (nsid) => user.token(nsid),
    pendingStore: new FilePendingStore(path.join(dir, `${name}.pending.json`)),
    retry: { baseDelayMs: 2, maxDelayMs: 50, maxAttempts: 30 },
  })

const directClient = (user: TestUser) =>
  new MlsClient({ serviceUrl: t.url, token: (nsid) => user.token(nsid), retry: { maxAttempts: 1 } })

async function allMessages(client: MlsClient, convoId: string): Promise<MessageView[]> {
  const messages: MessageView[] = []
  let cursor: string | undefined
  do {
    const page = await client.getMessages({ convoId, limit: 100, ...(cursor ? { sinceMessage: cursor } : {}) })
    messages.push(...page.messages)
    cursor = page.cursor
  } while (cursor)
  return messages
}

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex')

describe('the SDK over a network that drops, delays and cuts 20% of exchanges', () => {
  it(
    `delivers ${SENDS} sends exactly once, leaves nothing pending, and confirms every Welcome`,
    { timeout: 45_000 },
    async () => {
      const users = await Promise.all(Array.from({ length: 5 }, () => TestUser.create()))
      const clients = users.map((user, i) => faultyClient(user, `user${i}`))

      // Three conversations, each created by one user with the four others invited
      // (their MLS groups made, and key packages claimed, directly; the creation goes through the faults).
      const welcomes = new Map<string, Uint8Array>()
      const convos = await Promise.all(
        [0, 1, 2].map(async (creator) => {
          const prepared = await t.seed.prepareConvo(
            users[creator]!,
            users.filter((_, i) => i !== creator),
          )
          const convo = await clients[creator]!.createConvo(prepared.input)
          prepared.created(convo)
          welcomes.set(convo.id, welcomeOf(convo.id))
          return { id: convo.id, creator }
        }),
      )

      // Every invited member joins through the faulty proxy before anyone sends,
      // so each Welcome can only be settled by its confirmation.
      const joined: Array<{ convoId: string; received: Uint8Array }> = []
      await Promise.all(
        convos.flatMap(({ id, creator }) =>
          clients
            .filter((_, i) => i !== creator)
            .map((client) =>
              client.joinFromWelcome(id, async (welcome) => {
                joined.push({ convoId: id, received: welcome })
              }),
            ),
        ),
      )

      // 500 sends spread over the conversations and their members, 16 at a time.
      const sent = new Map<string, { convoId: string; sender: string; messageId?: string }>()
      const plan: Array<{ convo: (typeof convos)[number]; sender: number; ciphertext: Uint8Array }> = []
      for (let i = 0; i < SENDS; i++) {
        const convo = convos[i % convos.length]!
        const sender = (i * 7 + Math.floor(i / 3)) % users.length
        plan.push({ convo, sender, ciphertext: await message(users[sender]!, convo.id) })
      }
      let next = 0
      await Promise.all(
        Array.from({ length: CONCURRENCY }, async () => {
          while (next < plan.length) {
            const { convo, sender, ciphertext } = plan[next++]!
            const record: { convoId: string; sender: string; messageId?: string } = {
              convoId: convo.id,
              sender: users[sender]!.did,
            }
            sent.set(hex(ciphertext), record)
            const output = await clients[sender]!.sendMessage({
              convoId: convo.id,
              senderDid: users[sender]!.did,
              epoch: 1,
              ciphertext,
            })
            record.messageId = output.messageId
          }
        }),
      )

      // The faults happened, and retries were answered from the idempotency records.
      const faults =
        proxy.counts.dropRequest + proxy.counts.dropResponse + proxy.counts.delay + proxy.counts.resetMidResponse
      const requests = faults + proxy.counts.none
      expect(faults / requests).toBeGreaterThan(0.15)
      expect(faults / requests).toBeLessThan(0.25)
      for (const count of Object.values(proxy.counts)) expect(count).toBeGreaterThan(0)
      expect(proxy.replayed).toBeGreaterThan(0)

      // Nothing is left pending on any client, on disk or in memory.
      for (const client of clients) {
        expect(await client.pendingStore.list()).toEqual([])
        expect(await new FilePendingStore((client.pendingStore as FilePendingStore).file).list()).toEqual([])
        expect(await client.welcomeStore.list()).toEqual([])
      }

      // Conversations: created once each despite retried createConvo calls.
      const convoRows = await t.ctx.db.selectFrom('convo').select('id').execute()
      expect(convoRows.map((r) => r.id).sort()).toEqual(convos.map((c) => c.id).sort())

      // Every message arrived exactly once, as each sender was told, read back directly.
      const seen = new Set<string>()
      for (const { id, creator } of convos) {
        const messages = await allMessages(directClient(users[creator]!), id)
        expect(messages.map((m) => m.seq)).toEqual(messages.map((_, i) => i + 1))
        for (const message of messages) {
          const key = hex(message.ciphertext)
          expect(seen.has(key)).toBe(false)
          seen.add(key)
          expect(sent.get(key)).toEqual({ convoId: id, sender: message.sender, messageId: message.id })
        }
      }
      expect(seen.size).toBe(SENDS)
      const { rows } = await sql<{ total: number; distinct: number }>`
      SELECT count(*)::int AS total, count(DISTINCT ciphertext)::int AS distinct FROM message`.execute(t.ctx.db)
      expect(rows[0]).toEqual({ total: SENDS, distinct: SENDS })

      // Every Welcome reached its member intact and ended confirmed.
      expect(joined).toHaveLength(convos.length * (users.length - 1))
      for (const { convoId, received } of joined) expect(hex(received)).toBe(hex(welcomes.get(convoId)!))
      const deliveries = await t.ctx.db.selectFrom('welcome_delivery').select(['state', 'consumed_via']).execute()
      expect(deliveries).toHaveLength(convos.length * (users.length - 1))
      for (const delivery of deliveries) expect(delivery).toEqual({ state: 'consumed', consumed_via: 'confirm' })
    },
  )
})
