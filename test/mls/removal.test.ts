import { randomUUID } from 'node:crypto'
import { createGroupInfoWithExternalPub, decodeMlsMessage, encodeMlsMessage, type ClientState } from 'ts-mls'
import { beforeAll, describe, expect, it } from 'vitest'
import { commitSignedBySender, readCommitProposals, readRatchetTreeLeaves } from '../../src/mls/index.js'
import {
  addProposal,
  commit,
  encodeBase64,
  groupInfoOf,
  keyPackage,
  NSID,
  propose,
  removeProposal,
  removeProposals,
  stateOf,
  suiteImpl,
  TestDevice,
  TestUser,
  type TestApp,
} from '../helpers/index.js'
import { testAppForFile } from '../helpers/per-file.js'
import { expectRefusal } from '../helpers/refusal.js'

const t: TestApp = testAppForFile()
let alice: TestUser
let bob: TestUser
let carol: TestUser
let eve: TestUser

beforeAll(async () => {
  ;[alice, bob, carol, eve] = (await Promise.all([1, 2, 3, 4].map(() => TestUser.create()))) as TestUser[] as [
    TestUser,
    TestUser,
    TestUser,
    TestUser,
  ]
})

/**
 * A conversation of alice (its creator and admin) with bob on two devices
 * (two leaves, one Welcome naming both key packages) and carol.
 */
async function convoWithBobTwice() {
  const packages: Uint8Array[] = []
  for (const kp of [await keyPackage(bob), await keyPackage(bob)]) {
    expect((await t.seed.publishKeyPackage(bob, kp)).status).toBe(200)
  }
  // getKeyPackages hands out one package per user per call: alice asks twice.
  for (let i = 0; i < 2; i++) {
    const claimed = await t.call(alice, NSID.getKeyPackages, { params: { dids: [bob.did] } })
    packages.push(Buffer.from(claimed.body.keyPackages[0]!.keyPackage, 'base64'))
  }
  const [carolPackage] = await t.seed.claimKeyPackages(alice, [carol])
  const prepared = await t.seed.prepareConvo(
    alice,
    [bob, bob, carol],
    {},
    { keyPackages: [...packages, carolPackage!] },
  )
  const created = await t.call(alice, NSID.createConvo, { input: prepared.input })
  expect(created.status).toBe(200)
  prepared.created(created.body)
  return created.body
}

/** `user` stores the GroupInfo (with the ratchet tree) of the conversation's current epoch. */
async function storeGroupInfo(user: TestUser, convoId: string, state?: ClientState) {
  const current = state ?? (await stateOf(user, convoId))
  const res = await t.call(user, NSID.updateGroupInfo, {
    input: {
      convoId,
      groupInfo: encodeBase64(await groupInfoOf(current)),
      epoch: Number(current.groupContext.epoch),
    },
  })
  expect(res.status).toBe(200)
}

const removeInput = (convoId: string, target: TestUser, commitBytes: Uint8Array, extra: object = {}) => ({
  convoId,
  targetDid: target.did,
  commit: encodeBase64(commitBytes),
  idempotencyKey: randomUUID(),
  ...extra,
})

const memberDids = async (user: TestUser, convoId: string) =>
  (await t.call(user, NSID.getConvos)).body.conversations
    .find((c) => c.id === convoId)
    ?.members.map((m) => m.did)
    .sort()

describe('what the server reads of a removal commit (src/mls)', () => {
  it("reads the Remove proposals and sender of a member's PublicMessage commit, and the leaves of a GroupInfo's ratchet tree", async () => {
    const convo = await convoWithBobTwice()
    const state = await stateOf(alice, convo.id)
    const tree = readRatchetTreeLeaves(await groupInfoOf(state))
    expect(tree.identities).toEqual([alice.did, bob.did, bob.did, carol.did])
    expect(tree.epoch).toBe(1)
    const removal = await commit(state, removeProposals(state, bob), { publicMessage: true })
    expect(readCommitProposals(removal.data)).toMatchObject({
      epoch: 1,
      senderLeaf: 0,
      removedLeaves: [1, 2],
      otherProposals: [],
      proposalReferences: 0,
    })
    expect(await commitSignedBySender(removal.data, await groupInfoOf(state))).toBe(true)
    // Built on another epoch's group context, the signature does not verify.
    expect(await commitSignedBySender(removal.data, await groupInfoOf(removal.state))).toBe(false)
    const privately = await commit(state, removeProposals(state, bob))
    expect(() => readCommitProposals(privately.data)).toThrow(/not a PublicMessage or|PrivateMessage hides/)
    const bare = await createGroupInfoWithExternalPub(state, [], await suiteImpl())
    const withoutTree = encodeMlsMessage({ version: 'mls10', wireformat: 'mls_group_info', groupInfo: bare })
    expect(() => readRatchetTreeLeaves(withoutTree)).toThrow(/without the ratchet_tree extension/)
  })
})

describe('removeMember', () => {
  it("removes a member with the commit that removes all of the member's leaves: the epoch advances, the member reads nothing more", async () => {
    const convo = await convoWithBobTwice()
    await t.seed.sendMessage(bob, convo.id)
    await storeGroupInfo(alice, convo.id)
    const removal = await t.seed.prepareCommit(alice, convo.id, { remove: [bob], publicMessage: true })
    const res = await t.call(alice, NSID.removeMember, {
      input: removeInput(convo.id, bob, removal.commit, { reason: 'spam' }),
    })
    expect(res.body).toEqual({ ok: true, epochHint: 2 })
    removal.accepted()
    expect(await memberDids(alice, convo.id)).toEqual([alice.did, carol.did].sort())
    expect((await t.call(bob, NSID.getMessages, { params: { convoId: convo.id } })).status).toBe(403)
    // Carol processes the commit and goes on with alice; the removal is in the admins' log.
    expect((await t.seed.sendMessage(carol, convo.id)).status).toBe(200)
    const log = await t.ctx.db
      .selectFrom('admin_action')
      .select(['actor_did', 'action', 'target_did', 'reason'])
      .where('convo_id', '=', convo.id)
      .execute()
    expect(log).toEqual([{ actor_did: alice.did, action: 'remove_member', target_did: bob.did, reason: 'spam' }])
  })

  it('takes every registered device of the member out, and cancels the additions of its new ones (the conversation named by its group id)', async () => {
    // Dan (new here: no other conversation, no other key package) registers two devices; alice adds both.
    const dan = await TestUser.create()
    const devices = [await TestDevice.of(dan), await TestDevice.of(dan)]
    for (const device of devices) {
      const registered = await t.call(dan, NSID.registerDevice, {
        input: device.registration(await device.keyPackages(1)),
      })
      expect(registered.status).toBe(200)
    }
    const claimed = await t.call(alice, NSID.getKeyPackages, { params: { dids: [dan.did] } })
    const packages = claimed.body.keyPackages.map((kp) => Buffer.from(kp.keyPackage, 'base64'))
    expect(packages).toHaveLength(2)
    const prepared = await t.seed.prepareConvo(alice, [dan, dan], {}, { keyPackages: packages })
    const convo = (await t.call(alice, NSID.createConvo, { input: prepared.input })).body
    prepared.created(convo)
    const dansDevicesIn = () =>
      t.ctx.db
        .selectFrom('member_device')
        .select('device_id')
        .where('convo_id', '=', convo.id)
        .where('user_did', '=', dan.did)
        .execute()
    expect(await dansDevicesIn()).toHaveLength(2)
    // A third device of dan's waits to be added.
    const third = await TestDevice.of(dan)
    expect(
      (await t.call(dan, NSID.registerDevice, { input: third.registration(await third.keyPackages(1)) })).status,
    ).toBe(200)
    const waiting = await t.call(alice, NSID.getPendingDeviceAdditions, { params: { convoIds: [convo.groupId] } })
    expect(waiting.body.pendingAdditions.map((a) => a.userDid)).toEqual([dan.did])

    await storeGroupInfo(alice, convo.id)
    const removal = await t.seed.prepareCommit(alice, convo.id, { remove: [dan], publicMessage: true })
    const res = await t.call(alice, NSID.removeMember, { input: removeInput(convo.groupId, dan, removal.commit) })
    expect(res.body).toEqual({ ok: true, epochHint: 2 })
    removal.accepted()
    expect(await memberDids(alice, convo.id)).toEqual([alice.did])
    expect(await dansDevicesIn()).toEqual([])
    expect(
      (await t.call(alice, NSID.getPendingDeviceAdditions, { params: { convoIds: [convo.groupId] } })).body
        .pendingAdditions,
    ).toEqual([])
    const additions = await t.ctx.db
      .selectFrom('pending_device_addition')
      .select(['status', 'settled_by'])
      .where('convo_id', '=', convo.id)
      .execute()
    expect(additions).toEqual([{ status: 'cancelled', settled_by: 'left' }])
  })

  it('answers a retry with its idempotency key as the first time, and refuses the key with another request', async () => {
    const convo = await t.seed.createConvo(alice, [bob, carol])
    await storeGroupInfo(alice, convo.id)
    const removal = await t.seed.prepareCommit(alice, convo.id, { remove: [bob], publicMessage: true })
    const input = removeInput(convo.id, bob, removal.commit)
    const first = await t.call(alice, NSID.removeMember, { input })
    expect(first.body).toEqual({ ok: true, epochHint: 2 })
    removal.accepted()
    const again = await t.call(alice, NSID.removeMember, { input })
    expect([again.status, again.body, again.headers.get('idempotent-replayed')]).toEqual([200, first.body, 'true'])
    const other = await t.call(alice, NSID.removeMember, { input: { ...input, reason: 'something else' } })
    expect([other.status, other.body.error]).toEqual([422, 'IdempotencyKeyReused'])
  })

  it("refuses a commit that does not remove exactly all of the target's leaves, or is not the caller's own, with InvalidCommit", async () => {
    const convo = await convoWithBobTwice()
    const state = await stateOf(alice, convo.id)
    await storeGroupInfo(alice, convo.id, state)
    const send =
      (bytes: Uint8Array, caller = alice) =>
      () =>
        t.call(caller, NSID.removeMember, { input: removeInput(convo.id, bob, bytes) })
    const refused = async (bytes: Uint8Array, pattern: RegExp, caller = alice) =>
      expect(await expectRefusal(t.ctx.db, send(bytes, caller), 400, 'InvalidCommit')).toMatch(pattern)

    // Encrypted, its proposals are hidden from the server.
    await refused((await commit(state, removeProposals(state, bob))).data, /PrivateMessage hides its proposals/)
    // Someone else's leaves; one of bob's two; bob's and more.
    await refused(
      (await commit(state, [removeProposal(state, carol)], { publicMessage: true })).data,
      /removes leaves 3 \(.*\); did:.* holds leaves 1, 2/,
    )
    await refused(
      (await commit(state, [removeProposal(state, bob)], { publicMessage: true })).data,
      /removes leaves 1 .*holds leaves 1, 2/,
    )
    await refused(
      (await commit(state, [...removeProposals(state, bob), removeProposal(state, carol)], { publicMessage: true }))
        .data,
      /removes leaves 1 .*, 2 .*, 3 /,
    )
    const newcomer = await keyPackage(eve)
    await refused(
      (await commit(state, [...removeProposals(state, bob), addProposal(newcomer)], { publicMessage: true })).data,
      /Remove proposals only, not add/,
    )
    // A proposal sent before, named by reference.
    const proposed = await propose(state, removeProposal(state, carol))
    await refused(
      (await commit(proposed.state, removeProposals(state, bob), { publicMessage: true })).data,
      /names 1 proposal\(s\) by reference/,
    )
    // Carol's commit, sent by alice.
    const carolState = await stateOf(carol, convo.id)
    await refused(
      (await commit(carolState, removeProposals(carolState, bob), { publicMessage: true })).data,
      /sent from leaf 3 \(did:.*\), not from one of yours/,
    )
    // Alice's commit with its signature broken.
    const made = await commit(state, removeProposals(state, bob), { publicMessage: true })
    const decoded = decodeMlsMessage(made.data, 0)?.[0]
    if (decoded?.wireformat !== 'mls_public_message') throw new Error('not a PublicMessage')
    const signature = decoded.publicMessage.auth.signature
    signature[0] = (signature[0] ?? 0) ^ 1
    await refused(encodeMlsMessage(decoded), /signature does not verify with the key of its sender's leaf \(0\)/)
  })

  it('refuses a removal while no GroupInfo with its ratchet tree is kept for the current epoch (409 GroupInfoUnavailable)', async () => {
    const convo = await t.seed.createConvo(alice, [bob, carol])
    const removal = await t.seed.prepareCommit(alice, convo.id, { remove: [bob], publicMessage: true })
    const send = () => t.call(alice, NSID.removeMember, { input: removeInput(convo.id, bob, removal.commit) })
    expect(await expectRefusal(t.ctx.db, send, 409, 'GroupInfoUnavailable')).toMatch(
      /no GroupInfo is kept for epoch 1.*updateGroupInfo/,
    )
    // One without the tree says nothing of whose leaves are whose.
    const state = await stateOf(alice, convo.id)
    const bare = await createGroupInfoWithExternalPub(state, [], await suiteImpl())
    const withoutTree = encodeMlsMessage({ version: 'mls10', wireformat: 'mls_group_info', groupInfo: bare })
    const stored = await t.call(alice, NSID.updateGroupInfo, {
      input: { convoId: convo.id, groupInfo: encodeBase64(withoutTree), epoch: 1 },
    })
    expect(stored.status).toBe(200)
    expect(await expectRefusal(t.ctx.db, send, 409, 'GroupInfoUnavailable')).toMatch(/no readable ratchet tree/)
    // With it, the same commit goes through.
    await storeGroupInfo(alice, convo.id, state)
    expect((await send()).body).toEqual({ ok: true, epochHint: 2 })
    removal.accepted()
  })

  it('refuses non-members, non-admins, oneself, a target who is no member, no commit, and a commit of a past epoch', async () => {
    const convo = await t.seed.createConvo(alice, [bob, carol])
    await storeGroupInfo(alice, convo.id)
    const byAlice = await t.seed.prepareCommit(alice, convo.id, { remove: [bob], publicMessage: true })
    const byCarol = await t.seed.prepareCommit(carol, convo.id, { remove: [bob], publicMessage: true })
    const remove = (caller: TestUser, input: object) => () =>
      t.call(caller, NSID.removeMember, { input: { ...removeInput(convo.id, bob, byAlice.commit), ...input } })
    await expectRefusal(t.ctx.db, remove(eve, {}), 403, 'NotMember')
    expect(
      await expectRefusal(t.ctx.db, remove(carol, { commit: encodeBase64(byCarol.commit) }), 403, 'NotAdmin'),
    ).toMatch(/only admins remove other members/)
    await expectRefusal(t.ctx.db, remove(alice, { targetDid: alice.did }), 400, 'CannotRemoveSelf')
    await expectRefusal(t.ctx.db, remove(alice, { targetDid: eve.did }), 400, 'NotMember')
    await expectRefusal(
      t.ctx.db,
      () =>
        t.call(alice, NSID.removeMember, { input: { convoId: convo.id, targetDid: bob.did, idempotencyKey: 'k1' } }),
      400,
      'InvalidRequest',
    )
    await expectRefusal(t.ctx.db, remove(alice, { convoId: 'nosuchconvo' }), 404, 'ConvoNotFound')
    // Carol commits first: alice's commit is of a past epoch.
    expect((await t.seed.commitUpdate(carol, convo.id)).status).toBe(200)
    await expectRefusal(t.ctx.db, remove(alice, {}), 409, 'EpochMismatch')
  })

  it('lets a member who is not an admin remove one who is not, where the policy allows it', async () => {
    const convo = await t.seed.createConvo(alice, [bob, carol])
    const policy = await t.call(alice, NSID.updatePolicy, { input: { convoId: convo.id, allowMemberRemove: true } })
    expect(policy.body.policy.allowMemberRemove).toBe(true)
    await storeGroupInfo(carol, convo.id)
    const ofAlice = await t.seed.prepareCommit(carol, convo.id, { remove: [alice], publicMessage: true })
    const removeAlice = () => t.call(carol, NSID.removeMember, { input: removeInput(convo.id, alice, ofAlice.commit) })
    expect(await expectRefusal(t.ctx.db, removeAlice, 403, 'NotAdmin')).toMatch(/only admins remove an admin/)
    const ofBob = await t.seed.prepareCommit(carol, convo.id, { remove: [bob], publicMessage: true })
    const res = await t.call(carol, NSID.removeMember, { input: removeInput(convo.id, bob, ofBob.commit) })
    expect(res.body).toEqual({ ok: true, epochHint: 2 })
    ofBob.accepted()
  })
})
