import type { Kysely } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { DatabaseSchema } from '../../src/db/schema.js'
import { apnsIdOf } from '../../src/push/payload.js'
import {
  createTestDatabase,
  deviceWithToken,
  openKysely,
  pushConfig,
  pushQueueDrained,
  SeedClient,
  startChildServer,
  startTestApnsServer,
  testSigningKey,
  TestUser,
  xrpcClient,
  type ChildServer,
  type TestApnsServer,
  type TestDatabase,
} from '../helpers/index.js'

const key = testSigningKey()
let testDb: TestDatabase
let db: Kysely<DatabaseSchema>
let apns: TestApnsServer
let server: ChildServer | undefined

beforeAll(async () => {
  testDb = await createTestDatabase()
  db = openKysely(testDb.url)
  apns = await startTestApnsServer({ key })
})
afterAll(async () => {
  server?.process.kill('SIGKILL')
  await db?.destroy()
  await apns?.close()
  await testDb?.drop()
})

const drained = () => pushQueueDrained(db, 30_000)

describe('push worker crash mid-fan-out', () => {
  it('after SIGKILL and a restart every due push arrives, none twice beyond its apns-id', async () => {
    // The real server, trusting the test APNs's CA the way an operator's would: NODE_EXTRA_CA_CERTS.
    const env = {
      DATABASE_URL: testDb.url,
      DATABASE_LISTEN_URL: testDb.directUrl,
      ...(await pushConfig(apns, key, { PUSH_LEASE_SECONDS: '4' })),
      NODE_EXTRA_CA_CERTS: await apns.caFile(),
    }
    server = await startChildServer(env)
    expect(server.output()).toContain(`push notifications on: APNs at ${apns.origin}`)
    const api = xrpcClient(server.url)
    const seed = new SeedClient(api)

    const alice = await TestUser.create()
    const members = await Promise.all(Array.from({ length: 8 }, () => TestUser.create()))
    const devices: Array<{ did: string; deviceId: string; token: string }> = []
    for (const member of members) {
      for (let i = 0; i < 2; i++) devices.push({ did: member.did, ...(await deviceWithToken(api, member)) })
    }
    const convo = await seed.createConvo(alice, members)
    const send = async () => {
      const res = await seed.sendMessage(alice, convo.id)
      if (res.status !== 200) throw new Error(`sendMessage ${res.status}`)
      return res.body.seq
    }
    const pairsOf = (seqs: number[]) =>
      seqs.flatMap((seq) =>
        devices.map(
          (d) =>
            `${d.token} ${apnsIdOf({ convoId: convo.id, seq, kind: 'message', userDid: d.did, deviceId: d.deviceId })}`,
        ),
      )
    const delivered = () => apns.delivered().filter((r) => r.payload.type === 'mls_message')

    // Before the crash: pushes sent and done with.
    const before = [await send(), await send()]
    await drained()

    // APNs takes the next pushes but its answers do not come back: the worker is mid-way when it dies.
    apns.hold()
    const after = [await send(), await send(), await send()]
    await apns.until(() => apns.pending() >= 5)
    server.process.kill('SIGKILL')
    await server.exited
    apns.release()

    server = await startChildServer(env)
    await apns.until(() => {
      const got = new Set(delivered().map((r) => `${r.token} ${r.apnsId}`))
      return pairsOf(after).every((pair) => got.has(pair))
    }, 30_000)
    await drained()

    const counts = new Map<string, number>()
    for (const r of delivered()) counts.set(`${r.token} ${r.apnsId}`, (counts.get(`${r.token} ${r.apnsId}`) ?? 0) + 1)
    // Exactly the pushes of the five messages: no push under another apns-id, none missing.
    expect(new Set(counts.keys())).toEqual(new Set([...pairsOf(before), ...pairsOf(after)]))
    // Those done before the crash went once; those in flight at most twice, under the same apns-id.
    for (const pair of pairsOf(before)) expect(counts.get(pair)).toBe(1)
    for (const pair of pairsOf(after)) expect(counts.get(pair)).toBeLessThanOrEqual(2)
    expect([...counts.values()].some((n) => n === 2)).toBe(true)
  }, 120_000)
})
