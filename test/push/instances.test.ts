import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { apnsIdOf } from '../../src/push/payload.js'
import type { PushWorker } from '../../src/workers/push.js'
import {
  countRows,
  deviceWithToken,
  pushConfig,
  startPushWorker,
  startTestApnsServer,
  startTestApp,
  testSigningKey,
  TestUser,
  type TestApnsServer,
  type TestApp,
} from '../helpers/index.js'

// Two server instances on one database, each with its push worker, as in a scaled-out deployment.
let apns: TestApnsServer
let one: TestApp
let two: TestApp
let workers: PushWorker[] = []

beforeAll(async () => {
  const key = testSigningKey()
  apns = await startTestApnsServer({ key })
  one = await startTestApp({ config: await pushConfig(apns, key) })
  two = await startTestApp({ testDb: one.testDb, config: await pushConfig(apns, key) })
})
afterAll(async () => {
  await Promise.all(workers.map((w) => w.stop()))
  await two?.close()
  await one?.close()
  await apns?.close()
})

describe('push on several instances', () => {
  it('two workers share the queue: every push is sent once, none twice', async () => {
    const alice = await TestUser.create()
    const members = await Promise.all(Array.from({ length: 6 }, () => TestUser.create()))
    const devices: Array<{ did: string; deviceId: string; token: string }> = []
    for (const member of members) {
      for (let i = 0; i < 2; i++) devices.push({ did: member.did, ...(await deviceWithToken(one, member)) })
    }
    workers = [startPushWorker(one, apns), startPushWorker(two, apns)]
    const convo = await one.seed.createConvo(alice, members)
    // Sent through both instances at once, four at a time each.
    const sent: Array<{ seq: number }> = []
    await Promise.all(
      [one, two].flatMap((t) =>
        Array.from({ length: 4 }, async () => {
          for (let i = 0; i < 15; i++) {
            const res = await t.seed.sendMessage(alice, convo.id)
            if (res.status !== 200) throw new Error(`sendMessage ${res.status}`)
            sent.push(res.body)
          }
        }),
      ),
    )
    const expected = new Set(
      sent.flatMap(({ seq }) =>
        devices.map(
          (d) =>
            `${d.token} ${apnsIdOf({ convoId: convo.id, seq, kind: 'message', userDid: d.did, deviceId: d.deviceId })}`,
        ),
      ),
    )
    const received = () => apns.requests.filter((r) => r.payload.type === 'mls_message')
    await apns.until(() => received().length >= expected.size)
    // Both queues empty: nothing else is on its way.
    const deadline = Date.now() + 20_000
    while ((await countRows(one.ctx.db, 'push_outbox')) + (await countRows(one.ctx.db, 'push_retry')) > 0) {
      if (Date.now() > deadline) throw new Error('the push queue did not drain')
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
    const pairs = received().map((r) => `${r.token} ${r.apnsId}`)
    expect(pairs).toHaveLength(expected.size)
    expect(new Set(pairs)).toEqual(expected)
    const sentBy = async (t: TestApp) =>
      (await t.ctx.metrics.pushSent.get()).values.find((v) => v.labels.kind === 'message')?.value ?? 0
    expect((await sentBy(one)) + (await sentBy(two))).toBe(expected.size)
  })
})
