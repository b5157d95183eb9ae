import { randomBytes } from 'node:crypto'
import { sql } from 'kysely'
import { decodeMlsMessage, encodeMlsMessage } from 'ts-mls'
import { describe, expect, it } from 'vitest'
import {
  addProposal,
  Client,
  commit,
  countRows,
  encodeBase64,
  encrypt,
  groupInfoOf,
  hex,
  newGroup,
  removeProposal,
  SUITE,
} from '../helpers/index.js'
import { testAppForFile } from '../helpers/per-file.js'

const t = testAppForFile()

const P256 = 'MLS_128_DHKEMP256_AES128GCM_SHA256_P256'

const getGroupInfo = (client: Client, convoId: string) => client.call('getGroupInfo', { params: { convoId } })
const storedGroupInfos = async (convoId: string) => countRows(t.ctx.db, 'group_info', sql`convo_id = ${convoId}`)

/** The same GroupInfo without its external_pub extension (its signature no longer verifies; the server does not check it). */
function withoutExternalPub(data: Uint8Array): Uint8Array {
  const message = decodeMlsMessage(data, 0)?.[0]
  if (message?.wireformat !== 'mls_group_info') throw new Error('not a GroupInfo')
  const extensions = message.groupInfo.extensions.filter((e) => e.extensionType !== 'external_pub')
  return encodeMlsMessage({ ...message, groupInfo: { ...message.groupInfo, extensions } })
}

describe('the GroupInfo sent with a commit', () => {
  it('is stored with every kind of commit, must describe the epoch it leads to, and goes with a commit that brings none', async () => {
    const [alice, bob, carol] = [await Client.create(t), await Client.create(t), await Client.create(t)]
    await bob.publishKeyPackage()
    await carol.publishKeyPackage()

    // createConvo: the GroupInfo is of epoch 1, after the commit that added bob. One of epoch 0 is refused, and nothing is created.
    const groupId = randomBytes(16)
    alice.state = await newGroup(alice.user.did, groupId)
    const creation = await commit(alice.state, (await alice.keyPackagesOf(bob)).map(addProposal))
    const input = {
      groupId: hex(groupId),
      cipherSuite: SUITE,
      initialMembers: [bob.user.did],
      welcomeMessage: encodeBase64(creation.welcome!),
      commit: encodeBase64(creation.data),
    }
    const early = await alice.call('createConvo', {
      input: { ...input, groupInfo: encodeBase64(await alice.groupInfo()) },
    })
    expect([early.status, early.body.error, early.body.message]).toEqual([
      400,
      'InvalidGroupInfo',
      'groupInfo describes epoch 0, not 1, the epoch the conversation starts at',
    ])
    const atCreation = encodeBase64(await groupInfoOf(creation.state))
    const created = await alice.call('createConvo', {
      input: { ...input, groupInfo: atCreation },
    })
    expect(created.status).toBe(200)
    const convoId = created.body.id
    alice.state = creation.state
    await bob.join(convoId)
    expect((await getGroupInfo(bob, convoId)).body).toEqual({ groupInfo: atCreation, epoch: 1 })

    // addMembers: a GroupInfo of the epoch the commit was built on is refused with the commit; the one after it is stored.
    const addCarol = await commit(alice.state, (await alice.keyPackagesOf(carol)).map(addProposal))
    const addInput = {
      convoId,
      didList: [carol.user.did],
      commit: encodeBase64(addCarol.data),
      welcomeMessage: encodeBase64(addCarol.welcome!),
      epoch: 1,
    }
    const stale = await alice.call('addMembers', { input: { ...addInput, groupInfo: atCreation } })
    expect([stale.status, stale.body.error, stale.body.message]).toEqual([
      400,
      'InvalidGroupInfo',
      'groupInfo describes epoch 1, not 2, the epoch the commit leads to',
    ])
    expect((await getGroupInfo(bob, convoId)).body.epoch).toBe(1)
    const afterAdd = encodeBase64(await groupInfoOf(addCarol.state))
    expect((await alice.call('addMembers', { input: { ...addInput, groupInfo: afterAdd } })).body).toEqual({
      success: true,
      newEpoch: 2,
    })
    alice.state = addCarol.state
    await carol.join(convoId)
    expect((await getGroupInfo(carol, convoId)).body).toEqual({ groupInfo: afterAdd, epoch: 2 })

    // sendMessage: with a commit (bob updates his keys), not with an application message.
    await bob.sync(convoId)
    const update = await commit(bob.state)
    const afterUpdate = encodeBase64(await groupInfoOf(update.state))
    expect((await bob.send(convoId, update.data, { groupInfo: afterUpdate })).status).toBe(200)
    bob.state = update.state
    expect((await getGroupInfo(alice, convoId)).body).toEqual({ groupInfo: afterUpdate, epoch: 3 })
    const spoken = await encrypt(bob.state, new TextEncoder().encode('hi'))
    const withApplication = await bob.send(convoId, spoken.data, { groupInfo: afterUpdate })
    expect([withApplication.status, withApplication.body.message]).toEqual([
      400,
      expect.stringMatching(/send it with the commit/),
    ])

    // leaveConvo: the commit of a removal carries it; leaving without a commit cannot.
    await alice.sync(convoId)
    const removal = await commit(alice.state, [removeProposal(alice.state, carol.user)])
    const afterRemoval = encodeBase64(await groupInfoOf(removal.state))
    const removed = await alice.call('leaveConvo', {
      input: {
        convoId,
        targetDid: carol.user.did,
        commit: encodeBase64(removal.data),
        epoch: 3,
        groupInfo: afterRemoval,
      },
    })
    expect(removed.body).toEqual({ success: true, newEpoch: 4 })
    alice.state = removal.state
    expect((await getGroupInfo(alice, convoId)).body).toEqual({ groupInfo: afterRemoval, epoch: 4 })
    const leaving = await bob.call('leaveConvo', { input: { convoId, groupInfo: afterRemoval } })
    expect(leaving.status).toBe(400)
    expect((await getGroupInfo(bob, convoId)).status).toBe(200)

    // A commit without a GroupInfo leaves none: the stored one is of an epoch no external commit can be built on.
    await bob.sync(convoId)
    const bare = await commit(bob.state)
    expect((await bob.send(convoId, bare.data)).status).toBe(200)
    const none = await getGroupInfo(alice, convoId)
    expect([none.status, none.body.error]).toEqual([404, 'GroupInfoUnavailable'])
    expect(await storedGroupInfos(convoId)).toBe(0)
  })

  it('comes with a conversation created without a commit, of its first epoch', async () => {
    const alice = await Client.create(t)
    const groupId = randomBytes(16)
    alice.state = await newGroup(alice.user.did, groupId)
    const atStart = encodeBase64(await alice.groupInfo())
    const created = await alice.call('createConvo', {
      input: { groupId: hex(groupId), cipherSuite: SUITE, groupInfo: atStart },
    })
    expect(created.body.epoch).toBe(0)
    expect((await getGroupInfo(alice, created.body.id)).body).toEqual({ groupInfo: atStart, epoch: 0 })
    // Another group's is refused.
    const other = await alice.call('createConvo', {
      input: { groupId: hex(randomBytes(16)), cipherSuite: SUITE, groupInfo: atStart },
    })
    expect([other.status, other.body.error]).toEqual([400, 'GroupMismatch'])
  })
})

describe('updateGroupInfo', () => {
  it("stores the current epoch's GroupInfo of a member, for the members", async () => {
    const [alice, bob, eve] = [await Client.create(t), await Client.create(t), await Client.create(t)]
    const convoId = await alice.createConvo([bob], { groupInfo: false })
    const none = await getGroupInfo(bob, convoId)
    expect([none.status, none.body.error]).toEqual([404, 'GroupInfoUnavailable'])

    const alices = encodeBase64(await alice.groupInfo())
    const update = (client: Client, groupInfo: string, epoch = 1) =>
      client.call('updateGroupInfo', { input: { convoId, groupInfo, epoch } })
    expect((await update(alice, alices)).body).toEqual({ updated: true })
    expect((await update(alice, alices)).body).toEqual({ updated: false })
    expect((await getGroupInfo(bob, convoId)).body).toEqual({ groupInfo: alices, epoch: 1 })
    // Another member's replaces it: one GroupInfo per conversation.
    const bobs = encodeBase64(await bob.groupInfo())
    expect((await update(bob, bobs)).body).toEqual({ updated: true })
    expect((await getGroupInfo(alice, convoId)).body).toEqual({ groupInfo: bobs, epoch: 1 })
    expect(await storedGroupInfos(convoId)).toBe(1)

    // Only members see or store it.
    for (const res of [await getGroupInfo(eve, convoId), await update(eve, alices)]) {
      expect([res.status, res.body.error]).toEqual([403, 'NotMember'])
    }
    const unknown = await eve.call('getGroupInfo', { params: { convoId: 'nosuchconvo22' } })
    expect([unknown.status, unknown.body.error]).toEqual([404, 'ConvoNotFound'])
    expect((await getGroupInfo(alice, convoId)).body.groupInfo).toBe(bobs)
  })

  it('refuses a GroupInfo of an epoch left or not reached, of another group or suite, without external_pub, or not one at all', async () => {
    const [alice, bob] = [await Client.create(t), await Client.create(t)]
    const convoId = await alice.createConvo([bob])
    const stored = (await getGroupInfo(alice, convoId)).body.groupInfo
    const update = (groupInfo: Uint8Array, epoch: number) =>
      alice.call('updateGroupInfo', {
        input: { convoId, groupInfo: encodeBase64(groupInfo), epoch },
      })
    const refused = async (groupInfo: Uint8Array, epoch: number) => {
      const res = await update(groupInfo, epoch)
      return [res.status, res.body.error]
    }

    // Alice's own commit moves the conversation to epoch 2 and stores its GroupInfo.
    const epochOne = await alice.groupInfo()
    const next = await commit(alice.state)
    expect(
      (await alice.send(convoId, next.data, { groupInfo: encodeBase64(await groupInfoOf(next.state)) })).status,
    ).toBe(200)
    alice.state = next.state
    const current = (await getGroupInfo(bob, convoId)).body.groupInfo
    expect(current).not.toBe(stored)

    expect(await refused(epochOne, 1)).toEqual([409, 'StaleGroupInfo'])
    // Of a commit the server never took.
    expect(await refused(await groupInfoOf((await commit(alice.state)).state), 3)).toEqual([409, 'EpochMismatch'])
    // Declared with another epoch than its own.
    expect(await refused(await alice.groupInfo(), 3)).toEqual([400, 'EpochMismatch'])
    expect(await refused(withoutExternalPub(await alice.groupInfo()), 2)).toEqual([400, 'InvalidGroupInfo'])
    expect(await refused(randomBytes(300), 2)).toEqual([400, 'InvalidGroupInfo'])
    const elsewhere = await Client.create(t)
    await elsewhere.createConvo([await Client.create(t)])
    expect(await refused(await elsewhere.groupInfo(), 1)).toEqual([400, 'GroupMismatch'])
    // The same group id and epoch in another cipher suite.
    const groupId = decodeMlsMessage(await alice.groupInfo(), 0)?.[0]
    if (groupId?.wireformat !== 'mls_group_info') throw new Error('not a GroupInfo')
    const p256 = await newGroup(alice.user.did, groupId.groupInfo.groupContext.groupId, P256)
    const p256Info = await groupInfoOf(
      (await commit((await commit(p256, [], { suite: P256 })).state, [], { suite: P256 })).state,
      P256,
    )
    expect(await refused(p256Info, 2)).toEqual([400, 'InvalidGroupInfo'])

    expect((await getGroupInfo(bob, convoId)).body.groupInfo).toBe(current)
  })
})
