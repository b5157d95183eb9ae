import { createHash, randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  Client,
  deviceToken,
  deviceWithToken,
  encodeBase64,
  groupInfoOf,
  NSID,
  stateOf,
  TestDevice,
  pushQueueDrained,
  TestUser,
  startPushTestBed,
  type PushTestBed,
  type TestApnsServer,
  type TestApp,
} from '../helpers/index.js'

// Two servers on one database, configured differently, pushing to one APNs stand-in.
let bed: PushTestBed
let apns: TestApnsServer
let commits: TestApp
let wake: TestApp

beforeAll(async () => {
  bed = await startPushTestBed([{ PUSH_COMMITS: 'true', PUSH_RECIPIENT: 'sha256' }, { PUSH_PAYLOAD: 'wake' }])
  apns = bed.apns
  ;[commits, wake] = bed.apps as [TestApp, TestApp]
})
afterAll(async () => {
  await bed?.close()
})

/** The pushes each instance queued are sent, by its own worker (stopped after). */
async function sendQueued(t: TestApp): Promise<void> {
  const worker = bed.startWorker(t)
  await pushQueueDrained(t.ctx.db)
  await worker.stop()
}

const to = (token: string) => apns.requests.filter((r) => r.token === token)

describe('push modes', () => {
  it('PUSH_COMMITS: a commit wakes the other members’ apps with a background push; PUSH_RECIPIENT=sha256 names the account by hash', async () => {
    const [alice, bob] = await Promise.all([TestUser.create(), TestUser.create()])
    const alicePhone = await deviceWithToken(commits, alice)
    const bobPhone = await deviceWithToken(commits, bob)
    const convo = await commits.seed.createConvo(alice, [bob])
    const update = await commits.seed.commitUpdate(alice, convo.id)
    expect(update.status).toBe(200)
    await sendQueued(commits)
    const account = createHash('sha256').update(bob.did).digest('hex')
    const pushes = to(bobPhone.token)
    const commit = pushes.find((r) => r.payload.type === 'mls_commit')!
    expect(commit.headers).toMatchObject({ 'apns-push-type': 'background', 'apns-priority': '5' })
    expect(commit.payload).toEqual({
      aps: { 'content-available': 1 },
      type: 'mls_commit',
      convo_id: convo.groupId.toLowerCase(),
      message_id: (update.body as { messageId: string }).messageId,
      recipient_account: account,
      seq: (update.body as { seq: number }).seq,
      epoch: 1,
    })
    // The Welcome of the conversation's creation, with its commit (seq 1) pushed to nobody: bob joined with it.
    expect(pushes.map((r) => r.payload.type).sort()).toEqual(['mls_commit', 'mls_welcome'])
    expect(pushes.find((r) => r.payload.type === 'mls_welcome')!.payload).toMatchObject({ recipient_account: account })
    expect(to(alicePhone.token)).toEqual([])
  })

  it('PUSH_COMMITS: an external commit is pushed to every device but the one that joins, its user’s others included', async () => {
    const [alice, bob] = [await Client.create(commits), await Client.create(commits)]
    const alicePhone = await deviceWithToken(commits, alice.user)
    // Bob's phone is registered with the MLS key its new leaf will carry; his tablet is another device.
    const phone = await TestDevice.of(bob.user)
    const registered = await commits.call(bob.user, NSID.registerDevice, {
      input: phone.registration(await phone.keyPackages(1)),
    })
    expect(registered.status, JSON.stringify(registered.body)).toBe(200)
    const phoneToken = deviceToken()
    const tokenSet = await commits.call(bob.user, NSID.registerDeviceToken, {
      input: { deviceId: registered.body.deviceId, pushToken: phoneToken },
    })
    expect(tokenSet.status).toBe(200)
    const bobTablet = await deviceWithToken(commits, bob.user)
    const convoId = await alice.createConvo([bob])

    bob.forget()
    const rejoined = await (await bob.prepareRejoin(convoId, { signatureKeys: phone.keys })).send()
    expect(rejoined.status, JSON.stringify(rejoined.body)).toBe(200)
    await sendQueued(commits)
    const commitsTo = (token: string) => to(token).filter((r) => r.payload.type === 'mls_commit')
    const epoch = rejoined.body.epoch - 1
    expect(commitsTo(alicePhone.token).map((r) => r.payload.epoch)).toEqual([epoch])
    expect(commitsTo(bobTablet.token).map((r) => r.payload.epoch)).toEqual([epoch])
    expect(commitsTo(phoneToken)).toEqual([])
  })

  it('PUSH_COMMITS: an admin’s removal (removeMember) is pushed to the members who stay', async () => {
    const [alice, bob, carol] = await Promise.all([TestUser.create(), TestUser.create(), TestUser.create()])
    const carolPhone = await deviceWithToken(commits, carol)
    const convo = await commits.seed.createConvo(alice, [bob, carol])
    // removeMember checks the commit against the ratchet tree of the GroupInfo the server keeps.
    const state = await stateOf(alice, convo.id)
    const kept = await commits.call(alice, NSID.updateGroupInfo, {
      input: { convoId: convo.id, groupInfo: encodeBase64(await groupInfoOf(state)), epoch: 1 },
    })
    expect(kept.status).toBe(200)
    const removal = await commits.seed.prepareCommit(alice, convo.id, { remove: [bob], publicMessage: true })
    const res = await commits.call(alice, NSID.removeMember, {
      input: {
        convoId: convo.id,
        targetDid: bob.did,
        commit: encodeBase64(removal.commit),
        idempotencyKey: randomUUID(),
      },
    })
    expect(res.status, JSON.stringify(res.body)).toBe(200)
    removal.accepted()
    await sendQueued(commits)
    const pushed = to(carolPhone.token).filter((r) => r.payload.type === 'mls_commit')
    expect(pushed.map((r) => r.payload.epoch)).toEqual([1])
  })

  it('PUSH_PAYLOAD=wake: a bare alert, with nothing of the conversation, the message or the account', async () => {
    const [alice, bob] = await Promise.all([TestUser.create(), TestUser.create()])
    const bobPhone = await deviceWithToken(wake, bob)
    const convo = await wake.seed.createConvo(alice, [bob])
    expect((await wake.seed.sendMessage(alice, convo.id)).status).toBe(200)
    await sendQueued(wake)
    const pushes = to(bobPhone.token)
    expect(pushes).toHaveLength(2)
    for (const push of pushes) {
      expect(push.payload).toEqual({
        aps: { alert: { title: 'New Message', body: 'You have something new' }, sound: 'default' },
      })
      expect(push.headers['apns-collapse-id']).toBe('wake')
    }
  })
})
