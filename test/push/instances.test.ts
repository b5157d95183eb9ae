import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { apnsIdOf } from '../../src/push/payload.js'
import {
  deviceWithToken,
  pushQueueDrained,
  TestUser,
  startPushTestBed,
  type PushTestBed,
  type TestApnsServer,
  type TestApp,
} from '../helpers/index.js'

// Two server instances on one database, each with its push worker, as in a scaled-out deployment.
let bed: PushTestBed
let apns: TestApnsServer

beforeAll(async () => {
  bed = await startPushTestBed([{}, {}])
  apns = bed.apns
})
afterAll(async () => {
  await bed?.close()
})

describe('push on several instances', () => {
  it('two workers share the queue: every push is sent once, none twice', async () => {
    const [one, two] = bed.apps as [TestApp, TestApp]
    const alice = await TestUser.create()
    const members = await Promise.all(Array.from({ length: 6 }, () => TestUser.create()))
    const devices: Array<{ did: string; deviceId: string; token: string }> = []
    for (const member of members) {
      for (let i = 0; i < 2; i++) devices.push({ did: member.did, ...(await deviceWithToken(one, member)) })
    }
    for (const app of bed.apps) bed.startWorker(app)
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
    await pushQueueDrained(one.ctx.db)
    const pairs = received().map((r) => `${r.token} ${r.apnsId}`)
    expect(pairs).toHaveLength(expected.size)
    expect(new Set(pairs)).toEqual(expected)
    const sentBy = async (t: TestApp) =>
      (await t.ctx.metrics.pushSent.get()).values.find((v) => v.labels.kind === 'message')?.value ?? 0
    expect((await sentBy(one)) + (await sentBy(two))).toBe(expected.size)
  })
})
