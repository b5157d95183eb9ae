import { randomUUID } from 'node:crypto'
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { apnsIdOf } from '../../src/push/payload.js'
import type { PushWorker } from '../../src/workers/push.js'
import {
  base64Bytes,
  bytesJson,
  countRows,
  deviceWithToken,
  encodeBase64,
  message,
  NSID,
  pushQueueDrained,
  registeredDevice,
  TestUser,
  startPushTestBed,
  type PushTestBed,
  type TestApnsServer,
  type TestApp,
} from '../helpers/index.js'

let bed: PushTestBed
let apns: TestApnsServer
let t: TestApp
let worker: PushWorker

beforeAll(async () => {
  bed = await startPushTestBed()
  apns = bed.apns
  t = bed.apps[0] as TestApp
  worker = bed.startWorker(t)
})
afterAll(async () => {
  await bed?.close()
})

/** Every queued push has been through a pass that finished: all its sends were answered. */
const drained = () => pushQueueDrained(t.ctx.db)

const to = (token: string) => apns.requests.filter((r) => r.token === token)
/** The pushes of new messages a device got (Welcomes aside). */
const messagesTo = (token: string) => to(token).filter((r) => r.payload.type === 'mls_message')

async function sent(user: TestUser, convoId: string, opts: { deviceId?: string; ciphertext?: Uint8Array } = {}) {
  const res = await t.seed.sendMessage(user, convoId, opts)
  if (res.status !== 200) throw new Error(`sendMessage ${res.status}: ${JSON.stringify(res.body)}`)
  return res.body
}

const counter = async (metric: { get(): Promise<{ values: Array<{ value: number; labels: object }> }> }) =>
  (await metric.get()).values.reduce((sum, v) => sum + v.value, 0)

describe('who a new message is pushed to', () => {
  it('every registered device of every other member; none of the sender’s when it names no device', async () => {
    const [alice, bob, carol] = await Promise.all([TestUser.create(), TestUser.create(), TestUser.create()])
    const aliceDevices = [await deviceWithToken(t, alice), await deviceWithToken(t, alice)]
    const bobDevices = [await deviceWithToken(t, bob), await deviceWithToken(t, bob)]
    // Carol's device has no token: nothing to push to.
    await registeredDevice(t, carol)
    const convo = await t.seed.createConvo(alice, [bob, carol])
    const { messageId, seq } = await sent(alice, convo.id)
    await drained()
    for (const device of bobDevices) {
      expect(messagesTo(device.token).map((r) => r.apnsId)).toEqual([
        apnsIdOf({ convoId: convo.id, seq, kind: 'message', userDid: bob.did, deviceId: device.deviceId }),
      ])
      expect(messagesTo(device.token)[0]!.payload.message_id).toBe(messageId)
    }
    for (const device of aliceDevices) expect(to(device.token)).toEqual([])
  })

  it('the sender’s other devices too when it names the sending device (by its id or its mlsDid)', async () => {
    const [alice, bob] = await Promise.all([TestUser.create(), TestUser.create()])
    const [phone, tablet] = [await deviceWithToken(t, alice), await deviceWithToken(t, alice)]
    const bobPhone = await deviceWithToken(t, bob)
    const convo = await t.seed.createConvo(alice, [bob])
    await sent(alice, convo.id, { deviceId: phone.deviceId })
    await sent(alice, convo.id, { deviceId: `${alice.did}#${phone.deviceId}` })
    await drained()
    expect(to(phone.token)).toEqual([])
    expect(messagesTo(tablet.token)).toHaveLength(2)
    expect(messagesTo(bobPhone.token)).toHaveLength(2)
  })

  it('refuses a deviceId that is not the sender’s registered device, storing nothing (400 DeviceNotFound)', async () => {
    const [alice, bob] = await Promise.all([TestUser.create(), TestUser.create()])
    const convo = await t.seed.createConvo(alice, [bob])
    const bobPhone = await deviceWithToken(t, bob)
    for (const deviceId of [bobPhone.deviceId, 'no-such-device']) {
      const res = await t.seed.sendMessage(alice, convo.id, { deviceId })
      expect(res.status).toBe(400)
      expect(res.body).toMatchObject({ error: 'DeviceNotFound' })
    }
    const stored = await countRows(t.ctx.db, 'message', sql`convo_id = ${convo.id}`)
    expect(stored).toBe(0)
  })

  it('members who joined after a message get no push of it; one who left gets none of later ones', async () => {
    const [alice, bob, carol] = await Promise.all([TestUser.create(), TestUser.create(), TestUser.create()])
    const bobPhone = await deviceWithToken(t, bob)
    const carolPhone = await deviceWithToken(t, carol)
    const convo = await t.seed.createConvo(alice, [bob])
    const before = await sent(alice, convo.id)
    await drained()
    expect((await t.seed.addMembers(alice, convo.id, [carol])).status).toBe(200)
    expect((await t.seed.removeMember(alice, convo.id, bob)).status).toBe(200)
    const after = await sent(alice, convo.id)
    await drained()
    expect(messagesTo(bobPhone.token).map((r) => r.payload.message_id)).toEqual([before.messageId])
    // Carol: her Welcome, then the message after she joined.
    expect(
      to(carolPhone.token)
        .map((r) => r.payload.type)
        .sort(),
    ).toEqual(['mls_message', 'mls_welcome'])
    expect(messagesTo(carolPhone.token)[0]!.payload.message_id).toBe(after.messageId)
  })

  it('a message named by msgId: pushed once under that id, a retry of it not again', async () => {
    const [alice, bob] = await Promise.all([TestUser.create(), TestUser.create()])
    const bobPhone = await deviceWithToken(t, bob)
    const convo = await t.seed.createConvo(alice, [bob])
    const ciphertext = await message(alice, convo.id)
    const msgId = randomUUID().toUpperCase()
    const input = { convoId: convo.id, epoch: 1, ciphertext: bytesJson(ciphertext), msgId }
    for (let i = 0; i < 2; i++) expect((await t.call(alice, NSID.sendMessage, { input })).status).toBe(200)
    const marker = await sent(alice, convo.id)
    await drained()
    expect(
      messagesTo(bobPhone.token)
        .map((r) => r.payload.message_id)
        .sort(),
    ).toEqual([msgId, marker.messageId].sort())
  })

  it('only iOS tokens go to APNs', async () => {
    const [alice, bob] = await Promise.all([TestUser.create(), TestUser.create()])
    const deviceId = await registeredDevice(t, bob)
    const token = 'ab'.repeat(32)
    const res = await t.call(bob, NSID.registerDeviceToken, {
      input: { deviceId, pushToken: token, platform: 'android' },
    })
    expect(res.status).toBe(200)
    const marker = await deviceWithToken(t, bob)
    const convo = await t.seed.createConvo(alice, [bob])
    await sent(alice, convo.id)
    await drained()
    expect(messagesTo(marker.token)).toHaveLength(1)
    expect(to(token)).toEqual([])
  })
})

describe('what a push says', () => {
  it('a message: the keys the notification extension reads, the ciphertext as stored, one collapse id per conversation', async () => {
    const [alice, bob] = await Promise.all([TestUser.create(), TestUser.create()])
    const bobPhone = await deviceWithToken(t, bob)
    const convo = await t.seed.createConvo(alice, [bob])
    const ciphertext = await message(alice, convo.id)
    const out = await sent(alice, convo.id, { ciphertext })
    await drained()
    const [request] = messagesTo(bobPhone.token)
    expect(request!.payload).toEqual({
      aps: { alert: { title: 'New Message', body: 'Decrypting...' }, 'mutable-content': 1, sound: 'default' },
      type: 'mls_message',
      ciphertext: encodeBase64(ciphertext),
      convo_id: convo.groupId.toLowerCase(),
      message_id: out.messageId,
      recipient_did: bob.did,
      seq: out.seq,
      epoch: out.epoch,
    })
    expect(request!.headers).toMatchObject({
      'apns-topic': apns.topic,
      'apns-push-type': 'alert',
      'apns-priority': '10',
      'apns-collapse-id': convo.id,
    })
    const expiration = Number(request!.headers['apns-expiration'])
    expect(Math.abs(expiration - (Date.parse(out.receivedAt) / 1000 + 86_400))).toBeLessThanOrEqual(1)
  })

  it('a Welcome waiting: to the devices of the members a new conversation or addMembers adds, not to the others', async () => {
    const [alice, bob, carol] = await Promise.all([TestUser.create(), TestUser.create(), TestUser.create()])
    const bobPhone = await deviceWithToken(t, bob)
    const carolPhone = await deviceWithToken(t, carol)
    const alicePhone = await deviceWithToken(t, alice)
    const convo = await t.seed.createConvo(alice, [bob])
    expect((await t.seed.addMembers(alice, convo.id, [carol])).status).toBe(200)
    await drained()
    const welcome = (did: string) => ({
      aps: { alert: { title: 'New Conversation', body: 'You were added to a conversation' }, sound: 'default' },
      type: 'mls_welcome',
      convo_id: convo.groupId.toLowerCase(),
      recipient_did: did,
    })
    expect(to(bobPhone.token).map((r) => r.payload)).toEqual([welcome(bob.did)])
    expect(to(carolPhone.token).map((r) => r.payload)).toEqual([welcome(carol.did)])
    // The commit adding carol is not pushed (commits are not, by default), nor is anything to alice.
    expect(to(alicePhone.token)).toEqual([])
    expect(to(bobPhone.token)[0]!.headers).toMatchObject({ 'apns-push-type': 'alert', 'apns-priority': '10' })
  })

  it('a Welcome to each device whose key package it names (per welcome_delivery), not to the user’s others', async () => {
    const [alice, bob] = await Promise.all([TestUser.create(), TestUser.create()])
    const [phone, laptop] = [await deviceWithToken(t, bob, 2), await deviceWithToken(t, bob, 2)]
    /** Bob's key packages as alice claims them: one per device, with the device each is bound to. */
    const claim = async () => {
      const res = await t.call(alice, NSID.getKeyPackages, { params: { dids: [bob.did] } })
      return Promise.all(
        res.body.keyPackages.map(async (kp) => {
          const bound = await t.ctx.db
            .selectFrom('key_package')
            .select('device_id')
            .where('owner_did', '=', bob.did)
            .where(sql<boolean>`encode(ref, 'hex') = ${kp.keyPackageHash}`)
            .executeTakeFirstOrThrow()
          return { data: base64Bytes(kp.keyPackage), deviceId: bound.device_id }
        }),
      )
    }
    const create = async (packages: Uint8Array[]) => {
      const prepared = await t.seed.prepareConvo(
        alice,
        packages.map(() => bob),
        {},
        { keyPackages: packages },
      )
      const res = await t.call(alice, NSID.createConvo, { input: { ...prepared.input, initialMembers: [bob.did] } })
      if (res.status !== 200) throw new Error(`createConvo ${res.status}: ${JSON.stringify(res.body)}`)
      return res.body
    }
    const welcomes = (token: string) => to(token).filter((r) => r.payload.type === 'mls_welcome')
    // Both devices' packages: both devices get the Welcome's push.
    const both = await claim()
    expect(both.map((kp) => kp.deviceId).sort()).toEqual([phone.deviceId, laptop.deviceId].sort())
    const forBoth = await create(both.map((kp) => kp.data))
    // Only the laptop's: only the laptop.
    const laptopOnly = (await claim()).filter((kp) => kp.deviceId === laptop.deviceId)
    const forLaptop = await create(laptopOnly.map((kp) => kp.data))
    await drained()
    const convoIds = (token: string) => welcomes(token).map((r) => r.payload.convo_id)
    expect(convoIds(phone.token)).toEqual([forBoth.groupId.toLowerCase()])
    expect(convoIds(laptop.token).sort()).toEqual(
      [forBoth.groupId, forLaptop.groupId].map((g) => g.toLowerCase()).sort(),
    )
  })

  it('a member’s new device added to a conversation (a Welcome, no new user): a push to that device only', async () => {
    const [alice, bob] = await Promise.all([TestUser.create(), TestUser.create()])
    const bobPhone = await deviceWithToken(t, bob)
    const convo = await t.seed.createConvo(alice, [bob])
    await drained()
    // Bob registers a tablet; alice claims its addition and adds it with its key package, by a commit that adds no user.
    const tablet = await deviceWithToken(t, bob)
    const pending = await t.call(alice, NSID.getPendingDeviceAdditions, { params: {} })
    const addition = pending.body.pendingAdditions.find((p) => p.deviceId === tablet.deviceId)!
    const claim = await t.call(alice, NSID.claimPendingDeviceAddition, { input: { pendingAdditionId: addition.id } })
    expect(claim.body.keyPackage, JSON.stringify(claim.body)).toBeDefined()
    const tabletPackages = [base64Bytes(claim.body.keyPackage!.keyPackage)]
    const prepared = await t.seed.prepareCommit(alice, convo.id, { keyPackages: tabletPackages })
    const res = await t.call(alice, NSID.addMembers, {
      input: {
        convoId: convo.id,
        didList: [],
        commit: encodeBase64(prepared.commit),
        welcomeMessage: encodeBase64(prepared.welcome as Uint8Array),
      },
    })
    expect(res.status, JSON.stringify(res.body)).toBe(200)
    await drained()
    const welcomes = (token: string) => to(token).filter((r) => r.payload.type === 'mls_welcome')
    expect(welcomes(tablet.token)).toHaveLength(1)
    // The phone had only the Welcome of the conversation's creation.
    expect(welcomes(bobPhone.token)).toHaveLength(1)
  })

  it('commits are not pushed unless configured', async () => {
    const [alice, bob] = await Promise.all([TestUser.create(), TestUser.create()])
    const bobPhone = await deviceWithToken(t, bob)
    const convo = await t.seed.createConvo(alice, [bob])
    expect((await t.seed.commitUpdate(alice, convo.id)).status).toBe(200)
    const marker = await sent(alice, convo.id)
    await drained()
    expect(
      to(bobPhone.token)
        .map((r) => r.payload.type)
        .sort(),
    ).toEqual(['mls_message', 'mls_welcome'])
    expect(messagesTo(bobPhone.token)[0]!.payload.message_id).toBe(marker.messageId)
  })
})

describe('the 4 KB limit', () => {
  /** A real MLS message of `alice`'s exactly `size` bytes long (its text chosen to get there). */
  async function messageOfSize(alice: TestUser, convoId: string, size: number): Promise<Uint8Array> {
    let text = Math.max(0, size - 200)
    for (;;) {
      const made = await message(alice, convoId, new Uint8Array(text))
      if (made.length === size) return made
      text += size - made.length
    }
  }

  it('carries the ciphertext of messages in the buckets up to 2048 bytes, and not of larger ones, which the app fetches', async () => {
    const [alice, bob] = await Promise.all([TestUser.create(), TestUser.create()])
    const bobPhone = await deviceWithToken(t, bob)
    const convo = await t.seed.createConvo(alice, [bob])
    const sizes = [512, 1024, 2048, 4096, 8192, 16384]
    const messages = []
    for (const size of sizes) {
      const ciphertext = await messageOfSize(alice, convo.id, size)
      messages.push({ size, ciphertext, id: (await sent(alice, convo.id, { ciphertext })).messageId })
    }
    await drained()
    const pushes = new Map(messagesTo(bobPhone.token).map((r) => [r.payload.message_id, r]))
    for (const { size, ciphertext, id } of messages) {
      const push = pushes.get(id)!
      expect(push.answer.status).toBe(200)
      expect(push.bytes).toBeLessThanOrEqual(4096)
      if (size <= 2048) expect(push.payload.ciphertext).toBe(encodeBase64(ciphertext))
      else expect(push.payload).not.toHaveProperty('ciphertext')
      // The same keys either way.
      expect(push.payload).toMatchObject({ type: 'mls_message', message_id: id, recipient_did: bob.did })
    }
    expect(apns.requests.filter((r) => r.answer.status === 413)).toEqual([])
  })
})

describe('APNs feedback', () => {
  it('410 Unregistered and 400 BadDeviceToken forget the token; later messages are not pushed to it', async () => {
    const [alice, bob] = await Promise.all([TestUser.create(), TestUser.create()])
    const [gone, bad, kept] = [
      await deviceWithToken(t, bob),
      await deviceWithToken(t, bob),
      await deviceWithToken(t, bob),
    ]
    const convo = await t.seed.createConvo(alice, [bob])
    await drained()
    apns.answerNext(gone.token, { status: 410, reason: 'Unregistered', timestamp: Date.now() })
    apns.answerNext(bad.token, { status: 400, reason: 'BadDeviceToken' })
    const cleared = await counter(t.ctx.metrics.pushTokensCleared)
    await sent(alice, convo.id)
    await drained()
    const tokens = await t.ctx.db.selectFrom('push_token').select('device_id').where('user_did', '=', bob.did).execute()
    expect(tokens.map((r) => r.device_id)).toEqual([kept.deviceId])
    expect((await counter(t.ctx.metrics.pushTokensCleared)) - cleared).toBe(2)
    await sent(alice, convo.id)
    await drained()
    expect(messagesTo(gone.token)).toHaveLength(1)
    expect(messagesTo(bad.token)).toHaveLength(1)
    expect(messagesTo(kept.token)).toHaveLength(2)
  })

  it('a token registered again after APNs found it invalid stays', async () => {
    const [alice, bob] = await Promise.all([TestUser.create(), TestUser.create()])
    const phone = await deviceWithToken(t, bob)
    const convo = await t.seed.createConvo(alice, [bob])
    await drained()
    apns.answerNext(phone.token, { status: 410, reason: 'Unregistered', timestamp: Date.now() - 86_400_000 })
    await sent(alice, convo.id)
    await drained()
    expect(await countRows(t.ctx.db, 'push_token', sql`device_id = ${phone.deviceId}`)).toBe(1)
  })

  it('429 and 5xx are sent again, with the same apns-id, until APNs takes them', async () => {
    const [alice, bob] = await Promise.all([TestUser.create(), TestUser.create()])
    const phone = await deviceWithToken(t, bob)
    const convo = await t.seed.createConvo(alice, [bob])
    await drained()
    apns.answerNext(
      phone.token,
      { status: 429, reason: 'TooManyRequests' },
      { status: 500, reason: 'InternalServerError' },
      { status: 503, reason: 'ServiceUnavailable' },
    )
    const retried = await counter(t.ctx.metrics.pushRetried)
    await sent(alice, convo.id)
    await drained()
    const attempts = messagesTo(phone.token)
    expect(attempts.map((r) => r.answer.status)).toEqual([429, 500, 503, 200])
    expect(new Set(attempts.map((r) => r.apnsId)).size).toBe(1)
    expect(new Set(attempts.map((r) => r.payload.message_id)).size).toBe(1)
    expect((await counter(t.ctx.metrics.pushRetried)) - retried).toBe(3)
  })

  it('a push past its expiration is dropped and counted, not sent', async () => {
    const [alice, bob] = await Promise.all([TestUser.create(), TestUser.create()])
    const phone = await deviceWithToken(t, bob)
    const convo = await t.seed.createConvo(alice, [bob])
    await drained()
    await worker.stop()
    try {
      const { seq } = await sent(alice, convo.id)
      await sql`UPDATE push_outbox SET created_at = now() - interval '2 days' WHERE convo_id = ${convo.id} AND seq = ${seq}`.execute(
        t.ctx.db,
      )
      const metrics = await t.app.inject({ method: 'GET', url: '/metrics' })
      expect(metrics.body).toMatch(/push_queue_depth\{queue="queued"\} 1\n/)
      expect(Number(/^push_oldest_pending_seconds (\S+)$/m.exec(metrics.body)?.[1])).toBeGreaterThan(86_400)
    } finally {
      worker = bed.startWorker(t)
    }
    const dropped =
      (await t.ctx.metrics.pushDropped.get()).values.find((v) => v.labels.reason === 'expired')?.value ?? 0
    const marker = await sent(alice, convo.id)
    await drained()
    expect(messagesTo(phone.token).map((r) => r.payload.message_id)).toEqual([marker.messageId])
    const after = (await t.ctx.metrics.pushDropped.get()).values.find((v) => v.labels.reason === 'expired')?.value ?? 0
    expect(after - dropped).toBe(1)
  })
})

describe('sendMessage with push', () => {
  it('queues the push in the statement that stores the message: a send it refuses queues nothing', async () => {
    const [alice, bob, mallory] = await Promise.all([TestUser.create(), TestUser.create(), TestUser.create()])
    const convo = await t.seed.createConvo(alice, [bob])
    const ciphertext = await message(alice, convo.id)
    const res = await t.call(mallory, NSID.sendMessage, {
      input: { convoId: convo.id, epoch: 1, ciphertext: bytesJson(ciphertext) },
    })
    expect(res.status).toBe(403)
    expect(await countRows(t.ctx.db, 'push_outbox', sql`convo_id = ${convo.id} AND kind = 'message'`)).toBe(0)
  })
})
