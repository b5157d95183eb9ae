import { randomUUID } from 'node:crypto'
import { sql, type Kysely } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { DatabaseSchema } from '../../src/db/schema.js'
import {
  bytesJson,
  type ChildServer,
  createTestDatabase,
  message,
  NSID,
  openKysely,
  SeedClient,
  startChildServer,
  type TestDatabase,
  TestUser,
  xrpcClient,
} from '../helpers/index.js'

let testDb: TestDatabase
let db: Kysely<DatabaseSchema>
let server: ChildServer | undefined

beforeAll(async () => {
  testDb = await createTestDatabase()
  db = openKysely(testDb.url)
})
afterAll(async () => {
  server?.process.kill('SIGKILL')
  await db?.destroy()
  await testDb?.drop()
})

interface Send {
  key: string
  ciphertext: string
  messageId?: string
}

describe('process crash mid-load', () => {
  it('loses no acknowledged message and duplicates none after SIGKILL and keyed retries', async () => {
    server = await startChildServer({ DATABASE_URL: testDb.url, DATABASE_LISTEN_URL: testDb.directUrl })
    const alice = await TestUser.create()
    const bob = await TestUser.create()
    const convo = await new SeedClient(xrpcClient(server.url)).createConvo(alice, [bob])

    const sender = (i: number) => (i % 2 ? alice : bob)
    const sends: Send[] = []
    for (let i = 0; i < 300; i++) {
      sends.push({ key: randomUUID(), ciphertext: bytesJson(await message(sender(i), convo.id)).$bytes })
    }
    const send = async (url: string, s: Send, user: TestUser) => {
      const res = await xrpcClient(url).call(user, NSID.sendMessage, {
        input: {
          convoId: convo.id,
          senderDid: user.did,
          epoch: 1,
          ciphertext: { $bytes: s.ciphertext },
          idempotencyKey: s.key,
        },
      })
      if (res.status !== 200) throw new Error(`sendMessage ${res.status}: ${JSON.stringify(res.body)}`)
      return res.body.messageId
    }

    // 16 workers send until the server dies; it is killed after 60 acknowledgements.
    const firstUrl = server.url
    let acknowledged = 0
    let next = 0
    const killed = (async () => {
      while (acknowledged < 60) await new Promise((r) => setTimeout(r, 5))
      server!.process.kill('SIGKILL')
    })()
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (next < sends.length) {
          const i = next++
          const s = sends[i]!
          try {
            s.messageId = await send(firstUrl, s, sender(i))
            acknowledged++
          } catch {
            return // connection refused or cut: this worker stops
          }
        }
      }),
    )
    await killed
    await server.exited
    const unanswered = sends.filter((s, i) => s.messageId === undefined && i < next)
    expect(acknowledged).toBeGreaterThanOrEqual(60)

    // Restart on the same database and retry every unanswered request with its key.
    server = await startChildServer({ DATABASE_URL: testDb.url, DATABASE_LISTEN_URL: testDb.directUrl })
    for (const s of unanswered) {
      s.messageId = await send(server.url, s, sender(sends.indexOf(s)))
    }

    const { rows } = await sql<{ id: string; seq: number; ciphertext: Buffer }>`
      SELECT id, seq::int AS seq, ciphertext FROM message WHERE convo_id = ${convo.id} ORDER BY seq`.execute(db)
    const attempted = sends.slice(0, next)
    // Exactly the attempted messages, each once, under the id its sender was told.
    expect(rows).toHaveLength(attempted.length)
    const byCiphertext = new Map(rows.map((r) => [r.ciphertext.toString('base64').replace(/=+$/, ''), r.id]))
    expect(byCiphertext.size).toBe(attempted.length)
    for (const s of attempted) expect(byCiphertext.get(s.ciphertext)).toBe(s.messageId)
    // Sequence numbers 1..n with no gap.
    expect(rows.map((r) => r.seq)).toEqual(rows.map((_, i) => i + 1))
  }, 60_000)
})
