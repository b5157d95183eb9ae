import { randomBytes } from 'node:crypto'
import { sql } from 'kysely'
import { describe, expect, it } from 'vitest'
import {
  addProposal,
  Client,
  commit,
  encodeBase64,
  type InputOf,
  joinExternally,
  messagesOf,
  type NSID,
  openStream,
} from '../helpers/index.js'
import { testAppForFile } from '../helpers/per-file.js'

const t = testAppForFile()

/** What a refused request must leave as it was. */
async function snapshot(convoId: string) {
  const { rows } = await sql<{ state: string }>`SELECT concat_ws(',',
    (SELECT epoch FROM convo WHERE id = ${convoId}), (SELECT count(*) FROM message WHERE convo_id = ${convoId}),
    (SELECT count(*) FROM commit WHERE convo_id = ${convoId}), (SELECT count(*) FROM member WHERE convo_id = ${convoId} AND left_at IS NULL),
    (SELECT epoch FROM group_info WHERE convo_id = ${convoId})) AS state`.execute(t.ctx.db)
  return rows[0]!.state
}

const sendExternalCommit = (
  client: Client,
  convoId: string,
  externalCommit: Uint8Array,
  extra: Partial<InputOf<typeof NSID.processExternalCommit>> = {},
) =>
  client.call('processExternalCommit', {
    input: { convoId, externalCommit: encodeBase64(externalCommit), ...extra },
  })

describe('a member whose device lost its MLS state', () => {
  it('rejoins by external commit; the others follow it from getCommits and the stream; it reads what is said next', async () => {
    const [alice, bob, carol] = [await Client.create(t), await Client.create(t), await Client.create(t)]
    const convoId = await alice.createConvo([bob, carol])
    expect((await alice.say(convoId, 'before')).status).toBe(200)
    expect(await bob.sync(convoId)).toEqual(['before'])
    expect(await carol.sync(convoId)).toEqual(['before'])
    const stream = await openStream(t.url, alice.user, { convoId })

    bob.forget()
    const rejoined = await bob.rejoin(convoId)
    expect(rejoined.status, JSON.stringify(rejoined.body)).toBe(200)
    expect(rejoined.body.epoch).toBe(2)
    expect(Date.parse(rejoined.body.rejoinedAt)).toBeGreaterThan(Date.now() - 60_000)
    expect(bob.epoch).toBe(2)

    // Stored for getCommits, delivered in sequence with the messages and on the stream.
    expect((await alice.commits(convoId, 1)).map((c) => [c.epoch, c.sender])).toEqual([[1, bob.user.did]])
    await stream.waitFor((events) => messagesOf(events).some((m) => m.sender === bob.user.did))
    stream.close()
    await alice.catchUp(convoId)
    expect(alice.epoch).toBe(2)
    expect(await carol.sync(convoId)).toEqual([])
    expect(carol.epoch).toBe(2)

    expect((await alice.say(convoId, 'welcome back')).status).toBe(200)
    expect(await bob.sync(convoId)).toEqual(['welcome back'])
    expect(await carol.sync(convoId)).toEqual(['welcome back'])
    expect((await bob.say(convoId, 'glad to be back')).status).toBe(200)
    expect(await alice.sync(convoId)).toEqual(['glad to be back'])
    expect(await carol.sync(convoId)).toEqual(['glad to be back'])
    // He is still one member, with one leaf: the external commit replaced his old one.
    expect(alice.state.ratchetTree.filter((node) => node?.nodeType === 'leaf')).toHaveLength(3)
  })

  it('settles its pending Welcome, whose copy it lost', async () => {
    const [alice, bob, dave] = [await Client.create(t), await Client.create(t), await Client.create(t)]
    const convoId = await alice.createConvo([bob])
    await dave.publishKeyPackage()
    const addDave = await commit(alice.state, (await alice.keyPackagesOf(dave)).map(addProposal))
    const added = await alice.call('addMembers', {
      input: {
        convoId,
        didList: [dave.user.did],
        commit: encodeBase64(addDave.data),
        welcomeMessage: encodeBase64(addDave.welcome!),
        epoch: 1,
      },
    })
    expect(added.status).toBe(200)
    alice.state = addDave.state
    await alice.call('updateGroupInfo', {
      input: { convoId, groupInfo: encodeBase64(await alice.groupInfo()), epoch: 2 },
    })

    // Dave fetched the Welcome, and his device died before it was processed and stored.
    expect((await dave.call('getWelcome', { params: { convoId } })).status).toBe(200)
    expect((await dave.rejoin(convoId)).status).toBe(200)
    const welcome = await dave.call('getWelcome', { params: { convoId } })
    expect([welcome.status, welcome.body.error]).toEqual([410, 'WelcomeAlreadyConsumed'])
    await alice.catchUp(convoId)
    expect((await alice.say(convoId, 'hello dave')).status).toBe(200)
    expect(await dave.sync(convoId)).toEqual(['hello dave'])
  })

  it('races another: one wins the epoch, the other rebuilds on the next one and gets in too', async () => {
    const [alice, bob, carol] = [await Client.create(t), await Client.create(t), await Client.create(t)]
    const convoId = await alice.createConvo([bob, carol])
    bob.forget()
    carol.forget()
    // Both build on epoch 1 before either sends.
    const prepared = [await bob.prepareRejoin(convoId), await carol.prepareRejoin(convoId)]
    const replies = await Promise.all(prepared.map((p) => p.send()))
    expect(replies.map((r) => r.status).sort()).toEqual([200, 409])
    const loser = [bob, carol][replies.findIndex((r) => r.status === 409)]!
    expect(replies.find((r) => r.status === 409)!.body.error).toBe('EpochMismatch')
    // The winner stored the GroupInfo of epoch 2 with its commit: the loser builds on it.
    const again = await loser.rejoin(convoId)
    expect([again.status, again.body.epoch]).toEqual([200, 3])

    await alice.catchUp(convoId)
    expect(alice.epoch).toBe(3)
    const winner = loser === bob ? carol : bob
    await winner.catchUp(convoId)
    expect((await alice.say(convoId, 'both back')).status).toBe(200)
    expect(await bob.sync(convoId)).toEqual(['both back'])
    expect(await carol.sync(convoId)).toEqual(['both back'])
    expect(alice.state.ratchetTree.filter((node) => node?.nodeType === 'leaf')).toHaveLength(3)
  })
})

describe('an external commit', () => {
  it('is refused to strangers and to former members, even with a GroupInfo leaked to them', async () => {
    const [alice, bob, carol, eve] = [
      await Client.create(t),
      await Client.create(t),
      await Client.create(t),
      await Client.create(t),
    ]
    const convoId = await alice.createConvo([bob, carol])
    expect((await carol.call('leaveConvo', { input: { convoId } })).status).toBe(200)
    const leaked = await alice.groupInfo()
    const before = await snapshot(convoId)
    for (const outsider of [eve, carol]) {
      const info = await outsider.call('getGroupInfo', { params: { convoId } })
      expect([info.status, info.body.error]).toEqual([403, 'NotMember'])
      const made = await joinExternally(outsider.user, leaked)
      const res = await sendExternalCommit(outsider, convoId, made.commit, { groupInfo: encodeBase64(made.groupInfo) })
      expect([res.status, res.body.error]).toEqual([403, 'NotMember'])
    }
    const unknown = await sendExternalCommit(eve, 'nosuchconvo22', (await joinExternally(eve.user, leaked)).commit)
    expect([unknown.status, unknown.body.error]).toEqual([404, 'ConvoNotFound'])
    expect(await snapshot(convoId)).toBe(before)
  })

  it('brings in its sender only, under its own name, on the current epoch; the same one again is answered as the first time', async () => {
    const [alice, bob, eve] = [await Client.create(t), await Client.create(t), await Client.create(t)]
    const convoId = await alice.createConvo([bob])
    const groupInfo = await alice.groupInfo()
    const before = await snapshot(convoId)
    const refused = async (bytes: Uint8Array) => {
      const res = await sendExternalCommit(bob, convoId, bytes)
      return [res.status, res.body.error, res.body.message]
    }
    // A new leaf for eve (a stranger), or for alice (replacing her leaf), sent by bob.
    for (const identity of [eve.user.did, alice.user.did]) {
      const made = await joinExternally(bob.user, groupInfo, { identity })
      expect(await refused(made.commit)).toEqual([400, 'InvalidCommit', expect.stringMatching(/identity is your DID/)])
    }
    // A member's own commit is no external commit; random bytes are nothing.
    const ordinary = await commit(bob.state, [], { publicMessage: true })
    expect(await refused(ordinary.data)).toEqual([400, 'InvalidCommit', expect.stringMatching(/not by a new member/)])
    expect(await refused(randomBytes(200))).toEqual([400, 'InvalidCommit', expect.stringMatching(/MLSMessage/)])
    expect(await snapshot(convoId)).toBe(before)

    // The real one, then the same bytes again (a retry): one commit, one answer.
    const made = await joinExternally(bob.user, groupInfo)
    const first = await sendExternalCommit(bob, convoId, made.commit)
    expect(first.status).toBe(200)
    const retried = await sendExternalCommit(bob, convoId, made.commit)
    expect(retried.body).toEqual(first.body)
    expect((await alice.commits(convoId)).map((c) => c.epoch)).toEqual([0, 1])

    // One built on the epoch the conversation has left.
    const late = await joinExternally(bob.user, groupInfo)
    const stale = await sendExternalCommit(bob, convoId, late.commit)
    expect([stale.status, stale.body.error]).toEqual([409, 'EpochMismatch'])
    // Its GroupInfo must describe the epoch it leads to.
    bob.state = made.state
    const onTwo = await joinExternally(bob.user, await bob.groupInfo())
    const wrongInfo = await sendExternalCommit(bob, convoId, onTwo.commit, {
      groupInfo: encodeBase64(await bob.groupInfo()),
    })
    expect([wrongInfo.status, wrongInfo.body.error]).toEqual([400, 'InvalidGroupInfo'])
  })
})
