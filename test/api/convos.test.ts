import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { convoIdOf } from '../../src/services/membership.js'
import {
  bytesToJson,
  encodeBase64,
  type InputOf,
  NSID,
  randomGroupId,
  startTestApp,
  SUITE,
  type TestApp,
  TestUser,
} from '../helpers/index.js'

let t: TestApp
let alice: TestUser
let bob: TestUser
let carol: TestUser
let eve: TestUser

beforeAll(async () => {
  t = await startTestApp({ config: { MAX_MEMBERS_PER_CONVO: '4' } })
  alice = await TestUser.create()
  bob = await TestUser.create()
  carol = await TestUser.create()
  eve = await TestUser.create()
})
afterAll(async () => {
  await t?.close()
})

const memberDids = (convo: { members: Array<{ did: string }> }) => convo.members.map((m) => m.did).sort()

describe('createConvo', () => {
  it('makes the caller creator and member, adds initial members at epoch 1, keeps metadata', async () => {
    const prepared = await t.seed.prepareConvo(alice, [bob], {
      initialMembers: [bob.did, alice.did, bob.did],
      metadata: { name: 'Team', description: 'Plans' },
    })
    const res = await t.call(alice, NSID.createConvo, { input: prepared.input })
    expect(res.status).toBe(200)
    expect(res.body).toMatchObject({
      // Derived from the group id (convoIdOf).
      id: convoIdOf(prepared.input.groupId),
      groupId: prepared.input.groupId,
      creator: alice.did,
      // The Welcome follows the commit that added bob: MLS epoch 0 -> 1.
      epoch: 1,
      cipherSuite: SUITE,
      createdAt: expect.any(String),
      metadata: { name: 'Team', description: 'Plans' },
    })
    expect(memberDids(res.body)).toEqual([alice.did, bob.did].sort())
    // One Welcome, for bob only.
    const welcome = await t.call(bob, NSID.getWelcome, { params: { convoId: res.body.id } })
    expect(welcome.status).toBe(200)
    const none = await t.call(alice, NSID.getWelcome, { params: { convoId: res.body.id } })
    expect(none.status).toBe(404)
    expect(none.body.error).toBe('WelcomeNotFound')
  })

  it('refuses an unknown cipher suite, a non-hex group id and a taken group id', async () => {
    const badSuite = await t.call(alice, NSID.createConvo, {
      input: { groupId: randomGroupId(), cipherSuite: 'MLS_NOPE' },
    })
    expect(badSuite.status).toBe(400)
    expect(badSuite.body.error).toBe('InvalidCipherSuite')
    const badGroup = await t.call(alice, NSID.createConvo, { input: { groupId: 'not hex!', cipherSuite: SUITE } })
    expect(badGroup.status).toBe(400)
    const groupId = randomGroupId()
    expect((await t.call(alice, NSID.createConvo, { input: { groupId, cipherSuite: SUITE } })).status).toBe(200)
    const taken = await t.call(bob, NSID.createConvo, { input: { groupId, cipherSuite: SUITE } })
    expect(taken.status).toBe(409)
    expect(taken.body.error).toBe('ConvoAlreadyExists')
  })

  it('refuses a Welcome that is not base64', async () => {
    const res = await t.call(alice, NSID.createConvo, {
      input: { groupId: randomGroupId(), cipherSuite: SUITE, initialMembers: [bob.did], welcomeMessage: '***' },
    })
    expect(res.status).toBe(400)
    expect(String(res.body.message)).toContain('welcomeMessage')
  })
})

describe('createConvo: the epoch it starts at', () => {
  const create = (input: InputOf<typeof NSID.createConvo>) => t.call(alice, NSID.createConvo, { input })
  const commitsOf = (convoId: string) =>
    t.call(alice, NSID.getCommits, {
      params: { convoId, fromEpoch: 0 },
    })

  it('is 0 without members, 1 with members and their Welcome, and currentEpoch when the client says so', async () => {
    expect((await create({ groupId: randomGroupId(), cipherSuite: SUITE })).body.epoch).toBe(0)
    const withBob = await t.seed.prepareConvo(alice, [bob])
    expect((await create(withBob.input)).body.epoch).toBe(1)
    // A group that went through more epochs before it was registered.
    const later = await t.seed.prepareConvo(alice, [carol], { currentEpoch: 4 })
    expect((await create(later.input)).body.epoch).toBe(4)
    const zero = await t.seed.prepareConvo(alice, [eve], { currentEpoch: 0 })
    const refused = await create(zero.input)
    expect(refused.status).toBe(400)
    expect(refused.body.error).toBe('EpochMismatch')
  })

  it('with the commit that added the members: the epoch after it, and getCommits lists it', async () => {
    const prepared = await t.seed.prepareConvo(alice, [bob])
    const commit = encodeBase64(prepared.commit!)
    const disagreeing = await create({ ...prepared.input, commit, currentEpoch: 3 })
    expect(disagreeing.status).toBe(400)
    expect(disagreeing.body.error).toBe('EpochMismatch')
    const otherGroup = await create({ ...prepared.input, commit, groupId: randomGroupId() })
    expect(otherGroup.status).toBe(400)
    expect(otherGroup.body.error).toBe('GroupMismatch')
    const res = await create({ ...prepared.input, commit, currentEpoch: 1 })
    expect(res.status).toBe(200)
    expect(res.body.epoch).toBe(1)
    expect((await commitsOf(res.body.id)).body.commits.map((c) => [c.epoch, c.sender])).toEqual([[0, alice.did]])
  })

  it('refuses members without a Welcome naming their key packages, and stores nothing', async () => {
    const stranger = await TestUser.create()
    const groupId = randomGroupId()
    const res = await create({ groupId, cipherSuite: SUITE, initialMembers: [stranger.did] })
    expect(res.status).toBe(400)
    expect(res.body.error).toBe('KeyPackageNotFound')
    expect((await create({ groupId, cipherSuite: SUITE })).status).toBe(200)
  })
})

describe('getConvos', () => {
  it("lists only the caller's conversations, newest activity first, with cursor pagination", async () => {
    const dave = await TestUser.create()
    const mine = []
    for (let i = 0; i < 5; i++) mine.push(await t.seed.createConvo(dave, i % 2 ? [bob] : []))
    await t.seed.createConvo(eve)
    // Activity moves the oldest to the front.
    expect((await t.seed.sendMessage(dave, mine[0]!.id)).status).toBe(200)
    const expected = [mine[0], mine[4], mine[3], mine[2], mine[1]].map((c) => c!.id)

    const seen: string[] = []
    let cursor: string | undefined
    do {
      const page = await t.call(dave, NSID.getConvos, {
        params: { limit: 2, ...(cursor ? { cursor } : {}) },
      })
      expect(page.status).toBe(200)
      expect(page.body.conversations.length).toBeLessThanOrEqual(2)
      seen.push(...page.body.conversations.map((c) => c.id))
      cursor = page.body.cursor
    } while (cursor)
    expect(seen).toEqual(expected)
  })

  it('returns an empty list for a caller with none, and refuses a malformed cursor', async () => {
    const stranger = await TestUser.create()
    const empty = await t.call(stranger, NSID.getConvos)
    expect(empty).toMatchObject({ status: 200, body: { conversations: [] } })
    expect(empty.body.cursor).toBeUndefined()
    const bad = await t.call(stranger, NSID.getConvos, { params: { cursor: "1'; DROP TABLE convo;--" } })
    expect(bad.status).toBe(400)
    expect(bad.body.error).toBe('InvalidCursor')
  })
})

describe('addMembers', () => {
  it('adds new members, advances the epoch with a commit and stores the commit', async () => {
    const convo = await t.seed.createConvo(alice)
    const prepared = await t.seed.prepareCommit(alice, convo.id, { add: [bob] })
    const res = await t.call(alice, NSID.addMembers, {
      input: {
        convoId: convo.id,
        didList: [bob.did],
        commit: encodeBase64(prepared.commit),
        welcomeMessage: encodeBase64(prepared.welcome!),
      },
    })
    expect(res).toMatchObject({ status: 200, body: { success: true, newEpoch: 1 } })
    prepared.accepted()
    const epoch = await t.call(bob, NSID.getEpoch, { params: { convoId: convo.id } })
    expect(epoch.body).toEqual({ convoId: convo.id, currentEpoch: 1 })
    const commits = await t.call(bob, NSID.getCommits, {
      params: { convoId: convo.id, fromEpoch: 0 },
    })
    expect(commits.status).toBe(200)
    expect(commits.body.commits).toEqual([
      { epoch: 0, sender: alice.did, commitData: bytesToJson(prepared.commit), createdAt: expect.any(String) },
    ])
  })

  it('is naturally idempotent: the same commit again, or DIDs that are all members, change nothing', async () => {
    const convo = await t.seed.createConvo(alice, [bob])
    const prepared = await t.seed.prepareCommit(alice, convo.id, { add: [carol] })
    const input = {
      convoId: convo.id,
      didList: [carol.did],
      commit: encodeBase64(prepared.commit),
      welcomeMessage: encodeBase64(prepared.welcome!),
      epoch: prepared.epoch,
    }
    expect((await t.call(alice, NSID.addMembers, { input })).body).toEqual({ success: true, newEpoch: 2 })
    prepared.accepted()
    await t.seed.commitUpdate(bob, convo.id)
    // A retry after the group moved on: the answer of the first time, nothing stored twice.
    const again = await t.call(alice, NSID.addMembers, { input })
    expect(again).toMatchObject({ status: 200, body: { success: true, newEpoch: 2 } })
    const already = await t.call(alice, NSID.addMembers, {
      input: { convoId: convo.id, didList: [bob.did, alice.did] },
    })
    expect(already).toMatchObject({ status: 200, body: { success: true, newEpoch: 3 } })
    const commits = await t.call(alice, NSID.getCommits, {
      params: { convoId: convo.id, fromEpoch: 0 },
    })
    expect(commits.body.commits.map((c) => c.epoch)).toEqual([1, 2])
    // A new commit that adds no one does not belong here.
    const update = await t.seed.prepareCommit(alice, convo.id)
    const noOne = await t.call(alice, NSID.addMembers, {
      input: { convoId: convo.id, didList: [bob.did], commit: encodeBase64(update.commit) },
    })
    expect(noOne.status).toBe(400)
    expect(noOne.body.error).toBe('AlreadyMember')
    // The client-era clients send their key updates as addMembers with an empty didList: stored, the epoch moves on.
    const empty = await t.call(alice, NSID.addMembers, {
      input: { convoId: convo.id, didList: [], commit: encodeBase64(update.commit) },
    })
    expect(empty).toMatchObject({ status: 200, body: { success: true, newEpoch: 4 } })
    update.accepted()
    const after = await t.call(alice, NSID.getCommits, { params: { convoId: convo.id, fromEpoch: 0 } })
    expect(after.body.commits.map((c) => c.epoch)).toEqual([1, 2, 3])
  })

  it('refuses non-members (403), unknown conversations (404) and too many members', async () => {
    const convo = await t.seed.createConvo(alice, [bob])
    const byEve = await t.call(eve, NSID.addMembers, { input: { convoId: convo.id, didList: [eve.did] } })
    expect(byEve.status).toBe(403)
    expect(byEve.body.error).toBe('NotMember')
    const missing = await t.call(alice, NSID.addMembers, { input: { convoId: 'nope', didList: [eve.did] } })
    expect(missing.status).toBe(404)
    expect(missing.body.error).toBe('ConvoNotFound')
    const extra = await Promise.all([1, 2, 3].map(() => TestUser.create()))
    const tooMany = await t.call(alice, NSID.addMembers, {
      input: { convoId: convo.id, didList: extra.map((u) => u.did) },
    })
    expect(tooMany.status).toBe(400)
    expect(tooMany.body.error).toBe('TooManyMembers')
  })

  it('lets exactly one of two commits racing for the same epoch win', async () => {
    const convo = await t.seed.createConvo(alice, [bob])
    const [byAlice, byBob] = await Promise.all([
      t.seed.prepareCommit(alice, convo.id, { add: [carol] }),
      t.seed.prepareCommit(bob, convo.id, { add: [eve] }),
    ])
    const send = (user: TestUser, added: TestUser, prepared: typeof byAlice) =>
      t.call(user, NSID.addMembers, {
        input: {
          convoId: convo.id,
          didList: [added.did],
          commit: encodeBase64(prepared.commit),
          welcomeMessage: encodeBase64(prepared.welcome!),
          epoch: 1,
        },
      })
    const [one, two] = await Promise.all([send(alice, carol, byAlice), send(bob, eve, byBob)])
    const statuses = [one.status, two.status].sort()
    expect(statuses).toEqual([200, 409])
    expect([one, two].find((r) => r.status === 409)?.body.error).toBe('EpochMismatch')
    const epoch = await t.call(alice, NSID.getEpoch, { params: { convoId: convo.id } })
    expect(epoch.body.currentEpoch).toBe(2)
  })
})

describe('leaveConvo', () => {
  it('leaves, is naturally idempotent, and a former member loses access', async () => {
    const convo = await t.seed.createConvo(alice, [bob])
    // A member cannot commit its own removal (RFC 9420): it leaves without a commit.
    const update = await t.seed.prepareCommit(bob, convo.id)
    const withCommit = await t.call(bob, NSID.leaveConvo, {
      input: { convoId: convo.id, commit: encodeBase64(update.commit) },
    })
    expect(withCommit.status).toBe(400)
    const first = await t.call(bob, NSID.leaveConvo, { input: { convoId: convo.id } })
    expect(first).toMatchObject({ status: 200, body: { success: true, newEpoch: 1 } })
    const second = await t.call(bob, NSID.leaveConvo, { input: { convoId: convo.id } })
    expect(second).toMatchObject({ status: 200, body: { success: true, newEpoch: 1 } })
    const read = await t.call(bob, NSID.getMessages, { params: { convoId: convo.id } })
    expect(read.status).toBe(403)
    const convos = await t.call(bob, NSID.getConvos)
    expect(convos.body.conversations.map((c) => c.id)).not.toContain(convo.id)
  })

  it('stores the commit removing a member who already left: the epoch advances, and a retry changes nothing', async () => {
    const convo = await t.seed.createConvo(alice, [bob, carol])
    expect((await t.call(bob, NSID.leaveConvo, { input: { convoId: convo.id } })).body.newEpoch).toBe(1)
    const removal = await t.seed.prepareCommit(alice, convo.id, { remove: [bob] })
    const input = { convoId: convo.id, targetDid: bob.did, commit: encodeBase64(removal.commit), epoch: removal.epoch }
    expect((await t.call(alice, NSID.leaveConvo, { input })).body).toEqual({ success: true, newEpoch: 2 })
    removal.accepted()
    await t.seed.commitUpdate(carol, convo.id)
    expect((await t.call(alice, NSID.leaveConvo, { input })).body).toEqual({ success: true, newEpoch: 2 })
    const commits = await t.call(alice, NSID.getCommits, {
      params: { convoId: convo.id, fromEpoch: 0 },
    })
    expect(commits.body.commits.map((c) => [c.epoch, c.sender])).toEqual([
      [1, alice.did],
      [2, carol.did],
    ])
    // Removing again without a commit is harmless.
    expect((await t.call(alice, NSID.leaveConvo, { input: { convoId: convo.id, targetDid: bob.did } })).body).toEqual({
      success: true,
      newEpoch: 3,
    })
  })

  it('removes another member with targetDid, refuses the last member and strangers', async () => {
    const convo = await t.seed.createConvo(alice, [bob])
    const removed = await t.call(alice, NSID.leaveConvo, { input: { convoId: convo.id, targetDid: bob.did } })
    expect(removed.status).toBe(200)
    const last = await t.call(alice, NSID.leaveConvo, { input: { convoId: convo.id } })
    expect(last.status).toBe(400)
    expect(last.body.error).toBe('LastMember')
    const stranger = await t.call(eve, NSID.leaveConvo, { input: { convoId: convo.id } })
    expect(stranger.status).toBe(403)
    const notThere = await t.call(alice, NSID.leaveConvo, { input: { convoId: convo.id, targetDid: eve.did } })
    expect(notThere.status).toBe(400)
    expect(notThere.body.error).toBe('NotMember')
  })

  it('refuses a commit built on a past epoch, and an epoch its header does not say', async () => {
    const convo = await t.seed.createConvo(alice, [bob, carol])
    const stale = await t.seed.prepareCommit(alice, convo.id, { remove: [carol] })
    const wrongEpoch = await t.call(alice, NSID.leaveConvo, {
      input: { convoId: convo.id, targetDid: carol.did, commit: encodeBase64(stale.commit), epoch: 3 },
    })
    expect(wrongEpoch.status).toBe(400)
    expect(wrongEpoch.body.error).toBe('EpochMismatch')
    expect((await t.seed.commitUpdate(bob, convo.id)).status).toBe(200)
    const res = await t.call(alice, NSID.leaveConvo, {
      input: { convoId: convo.id, targetDid: carol.did, commit: encodeBase64(stale.commit), epoch: stale.epoch },
    })
    expect(res.status).toBe(409)
    expect(res.body.error).toBe('EpochMismatch')
  })
})

describe('getEpoch and getCommits', () => {
  it('returns commits of an epoch range in order and refuses bad ranges', async () => {
    const convo = await t.seed.createConvo(alice)
    const members = await Promise.all([1, 2, 3].map(() => TestUser.create()))
    for (const [i, m] of members.entries()) {
      const r = await t.seed.addMembers(alice, convo.id, [m])
      expect(r.body.newEpoch).toBe(i + 1)
    }
    const range = await t.call(alice, NSID.getCommits, {
      params: { convoId: convo.id, fromEpoch: 1, toEpoch: 2 },
    })
    expect(range.body.commits.map((c) => c.epoch)).toEqual([1, 2])
    const reversed = await t.call(alice, NSID.getCommits, { params: { convoId: convo.id, fromEpoch: 2, toEpoch: 1 } })
    expect(reversed.status).toBe(400)
    expect(reversed.body.error).toBe('InvalidEpochRange')
    const future = await t.call(alice, NSID.getCommits, { params: { convoId: convo.id, fromEpoch: 9 } })
    expect(future.body.error).toBe('InvalidEpochRange')
    const stranger = await t.call(eve, NSID.getEpoch, { params: { convoId: convo.id } })
    expect(stranger.status).toBe(403)
    const unknown = await t.call(alice, NSID.getCommits, { params: { convoId: 'missing', fromEpoch: 0 } })
    expect(unknown.status).toBe(404)
  })
})
