import { describe, expect, it } from 'vitest'
import {
  addProposal,
  Client,
  commit,
  type Commit,
  encodeBase64,
  encrypt,
  bytesFromJson,
  hex,
  newGroup,
  propose,
  receive,
  removeProposal,
  SUITE,
} from '../helpers/index.js'
import { testAppForFile } from '../helpers/per-file.js'

const t = testAppForFile()

const text = (s: string) => new TextEncoder().encode(s)

const epochOf = async (client: Client, convoId: string) =>
  (await client.call('getEpoch', { params: { convoId } })).body.currentEpoch

describe('a real MLS group lives its whole life through the server', () => {
  it('creates, joins, talks, adds, updates, loses a member for good, and resolves racing commits', async () => {
    const alice = await Client.create(t)
    const bob = await Client.create(t)
    const carol = await Client.create(t)
    const dave = await Client.create(t)

    // Bob and carol publish key packages; alice gets bob's and creates the group with him.
    await bob.publishKeyPackage()
    await carol.publishKeyPackage()
    const groupId = new Uint8Array(Buffer.from('catbird-life-test'))
    alice.state = await newGroup(alice.user.did, groupId)
    const [bobKp] = await alice.keyPackagesOf(bob)
    const creation = await commit(alice.state, [addProposal(bobKp!)])
    const created = await alice.call('createConvo', {
      input: {
        groupId: hex(groupId),
        cipherSuite: SUITE,
        initialMembers: [bob.user.did],
        welcomeMessage: encodeBase64(creation.welcome!),
        commit: encodeBase64(creation.data),
        currentEpoch: 1,
      },
    })
    expect(created.status).toBe(200)
    const convoId = created.body.id
    // The server's epoch is MLS's: the commit that added bob moved the group to 1.
    expect(created.body.epoch).toBe(1)
    alice.state = creation.state
    expect(alice.epoch).toBe(1)

    // Bob joins by the Welcome; they talk, and each decrypts the other.
    await bob.join(convoId)
    expect(bob.epoch).toBe(1)
    expect((await alice.say(convoId, 'hello bob')).status).toBe(200)
    expect(await bob.sync(convoId)).toEqual(['hello bob'])
    expect((await bob.say(convoId, 'hi alice')).status).toBe(200)
    expect(await alice.sync(convoId)).toEqual(['hi alice'])

    // Alice adds carol: the commit reaches bob among the messages, carol joins at epoch 2.
    const [carolKp] = await alice.keyPackagesOf(carol)
    const addCarol = await commit(alice.state, [addProposal(carolKp!)])
    const added = await alice.call('addMembers', {
      input: {
        convoId,
        didList: [carol.user.did],
        commit: encodeBase64(addCarol.data),
        welcomeMessage: encodeBase64(addCarol.welcome!),
        epoch: 1,
      },
    })
    expect(added.body).toEqual({ success: true, newEpoch: 2 })
    alice.state = addCarol.state
    expect(await bob.sync(convoId)).toEqual([])
    expect(bob.epoch).toBe(2)
    await carol.join(convoId)
    expect(carol.epoch).toBe(2)
    expect((await alice.say(convoId, 'three of us')).status).toBe(200)
    expect(await bob.sync(convoId)).toEqual(['three of us'])
    // Carol reads from after the commit that added her: nothing of epoch 1, which she cannot open.
    const carolSees = await carol.call('getMessages', { params: { convoId } })
    expect(carolSees.body.messages.map((m) => [m.sender, m.epoch])).toEqual([[alice.user.did, 2]])
    expect(await carol.sync(convoId)).toEqual(['three of us'])

    // Carol updates her keys with a commit through sendMessage: epoch 3, listed by getCommits.
    const update = await commit(carol.state)
    expect((await carol.send(convoId, update.data)).status).toBe(200)
    carol.state = update.state
    expect(await epochOf(alice, convoId)).toBe(3)
    expect((await alice.commits(convoId, 2)).map((c) => [c.epoch, c.sender])).toEqual([[2, carol.user.did]])
    expect(await alice.sync(convoId)).toEqual([])
    expect(await bob.sync(convoId)).toEqual([])
    expect((await carol.say(convoId, 'fresh keys')).status).toBe(200)
    expect(await alice.sync(convoId)).toEqual(['fresh keys'])
    expect(await bob.sync(convoId)).toEqual(['fresh keys'])

    // Bob proposes his own removal and leaves; he cannot commit it, alice does.
    const proposal = await propose(bob.state, removeProposal(bob.state, bob.user))
    expect((await bob.send(convoId, proposal.data)).status).toBe(200)
    bob.state = proposal.state
    expect((await bob.call('leaveConvo', { input: { convoId } })).body).toEqual({ success: true, newEpoch: 3 })
    const bobAfterLeaving = bob.state
    expect(await alice.sync(convoId)).toEqual([])
    const removal = await commit(alice.state)
    const removeInput = { convoId, targetDid: bob.user.did, commit: encodeBase64(removal.data), epoch: 3 }
    expect((await alice.call('leaveConvo', { input: removeInput })).body).toEqual({ success: true, newEpoch: 4 })
    alice.state = removal.state
    // The same commit again (a retry): the same answer, nothing stored twice.
    expect((await alice.call('leaveConvo', { input: removeInput })).body).toEqual({ success: true, newEpoch: 4 })
    expect((await alice.commits(convoId)).map((c) => c.epoch)).toEqual([0, 1, 2, 3])

    // What follows, the leaver can neither fetch nor decrypt.
    expect(await carol.sync(convoId)).toEqual([])
    expect(carol.epoch).toBe(4)
    const secret = await encrypt(alice.state, text('bob is gone'))
    alice.state = secret.state
    expect((await alice.send(convoId, secret.data)).status).toBe(200)
    expect(await carol.sync(convoId)).toEqual(['bob is gone'])
    expect((await bob.call('getMessages', { params: { convoId } })).status).toBe(403)
    await expect(receive(bobAfterLeaving, secret.data)).rejects.toThrow()
    // Even with the commit that removed him, his state ends there.
    const removedBob = await receive(bobAfterLeaving, removal.data)
    expect(removedBob.state.groupActiveState.kind).toBe('removedFromGroup')
    await expect(receive(removedBob.state, secret.data)).rejects.toThrow()

    // Alice and carol commit on epoch 4 at once: one wins, the other gets EpochMismatch,
    // fetches the winner's commit, builds again on epoch 5 and gets through.
    const racing: Array<[Client, Commit]> = [
      [alice, await commit(alice.state)],
      [carol, await commit(carol.state)],
    ]
    const replies = await Promise.all(racing.map(([client, made]) => client.send(convoId, made.data)))
    expect(replies.map((r) => r.status).sort()).toEqual([200, 409])
    const loserAt = replies.findIndex((r) => r.status === 409)
    expect(replies[loserAt]!.body.error).toBe('EpochMismatch')
    const [winner, won] = racing[1 - loserAt]!
    const [loser] = racing[loserAt]!
    winner.state = won.state
    const [winning] = await loser.commits(convoId, 4)
    expect(winning).toMatchObject({ epoch: 4, sender: winner.user.did })
    loser.state = (await receive(loser.state, bytesFromJson(winning!.commitData))).state
    expect(loser.epoch).toBe(5)
    await loser.sync(convoId)
    const rebuilt = await commit(loser.state)
    expect((await loser.send(convoId, rebuilt.data)).status).toBe(200)
    loser.state = rebuilt.state
    expect(await winner.sync(convoId)).toEqual([])
    expect(winner.epoch).toBe(6)

    // Dave comes in last and reads what is said after.
    await dave.publishKeyPackage()
    const [daveKp] = await winner.keyPackagesOf(dave)
    const addDave = await commit(winner.state, [addProposal(daveKp!)])
    expect(
      (
        await winner.call('addMembers', {
          input: {
            convoId,
            didList: [dave.user.did],
            commit: encodeBase64(addDave.data),
            welcomeMessage: encodeBase64(addDave.welcome!),
            epoch: 6,
          },
        })
      ).body,
    ).toEqual({ success: true, newEpoch: 7 })
    winner.state = addDave.state
    await dave.join(convoId)
    expect((await loser.sync(convoId)).length).toBe(0)
    expect((await loser.say(convoId, 'welcome dave')).status).toBe(200)
    expect(await dave.sync(convoId)).toEqual(['welcome dave'])
    expect(await winner.sync(convoId)).toEqual(['welcome dave'])
    expect(await epochOf(dave, convoId)).toBe(dave.epoch)
  })
})
