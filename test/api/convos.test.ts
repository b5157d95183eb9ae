import { randomBytes } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestApp, type TestApp } from '../helpers/app.js'
import { b64, createConvo, NS, randomGroupId, sendMessage, SUITE } from '../helpers/mls.js'
import { TestUser } from '../helpers/users.js'

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
  it('makes the caller creator and member, adds initial members, keeps metadata', async () => {
    const groupId = randomGroupId()
    const res = await t.call(alice, `${NS}.createConvo`, {
      input: {
        groupId,
        cipherSuite: SUITE,
        initialMembers: [bob.did, alice.did, bob.did],
        welcomeMessage: b64(randomBytes(40)),
        metadata: { name: 'Team', description: 'Plans' },
      },
    })
    expect(res.status).toBe(200)
    expect(res.body).toMatchObject({
      id: expect.stringMatching(/^[a-z2-7]{13}$/),
      groupId,
      creator: alice.did,
      epoch: 0,
      cipherSuite: SUITE,
      createdAt: expect.any(String),
      metadata: { name: 'Team', description: 'Plans' },
    })
    expect(memberDids(res.body as never)).toEqual([alice.did, bob.did].sort())
    // One Welcome, for bob only.
    const welcome = await t.call(bob, `${NS}.getWelcome`, { params: { convoId: String(res.body.id) } })
    expect(welcome.status).toBe(200)
    const none = await t.call(alice, `${NS}.getWelcome`, { params: { convoId: String(res.body.id) } })
    expect(none.status).toBe(404)
    expect(none.body.error).toBe('WelcomeNotFound')
  })

  it('refuses an unknown cipher suite, a non-hex group id and a taken group id', async () => {
    const badSuite = await t.call(alice, `${NS}.createConvo`, {
      input: { groupId: randomGroupId(), cipherSuite: 'MLS_NOPE' },
    })
    expect(badSuite.status).toBe(400)
    expect(badSuite.body.error).toBe('InvalidCipherSuite')
    const badGroup = await t.call(alice, `${NS}.createConvo`, { input: { groupId: 'not hex!', cipherSuite: SUITE } })
    expect(badGroup.status).toBe(400)
    const groupId = randomGroupId()
    expect((await t.call(alice, `${NS}.createConvo`, { input: { groupId, cipherSuite: SUITE } })).status).toBe(200)
    const taken = await t.call(bob, `${NS}.createConvo`, { input: { groupId, cipherSuite: SUITE } })
    expect(taken.status).toBe(409)
    expect(taken.body.error).toBe('ConvoAlreadyExists')
  })

  it('refuses a Welcome that is not base64', async () => {
    const res = await t.call(alice, `${NS}.createConvo`, {
      input: { groupId: randomGroupId(), cipherSuite: SUITE, initialMembers: [bob.did], welcomeMessage: '***' },
    })
    expect(res.status).toBe(400)
    expect(String(res.body.message)).toContain('welcomeMessage')
  })
})

describe('getConvos', () => {
  it("lists only the caller's conversations, newest activity first, with cursor pagination", async () => {
    const dave = await TestUser.create()
    const mine = []
    for (let i = 0; i < 5; i++) mine.push(await createConvo(t, dave, i % 2 ? [bob] : []))
    await createConvo(t, eve)
    // Activity moves the oldest to the front.
    expect((await sendMessage(t, dave, mine[0]!.id)).status).toBe(200)
    const expected = [mine[0], mine[4], mine[3], mine[2], mine[1]].map((c) => c!.id)

    const seen: string[] = []
    let cursor: string | undefined
    do {
      const page = await t.call<{ conversations: Array<{ id: string }>; cursor?: string }>(dave, `${NS}.getConvos`, {
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
    const empty = await t.call(stranger, `${NS}.getConvos`)
    expect(empty).toMatchObject({ status: 200, body: { conversations: [] } })
    expect(empty.body.cursor).toBeUndefined()
    const bad = await t.call(stranger, `${NS}.getConvos`, { params: { cursor: "1'; DROP TABLE convo;--" } })
    expect(bad.status).toBe(400)
    expect(bad.body.error).toBe('InvalidCursor')
  })
})

describe('addMembers', () => {
  it('adds new members, advances the epoch with a commit and stores the commit', async () => {
    const convo = await createConvo(t, alice)
    const commit = randomBytes(49)
    const res = await t.call(alice, `${NS}.addMembers`, {
      input: { convoId: convo.id, didList: [bob.did], commit: b64(commit), welcomeMessage: b64(randomBytes(30)) },
    })
    expect(res).toMatchObject({ status: 200, body: { success: true, newEpoch: 1 } })
    const epoch = await t.call(bob, `${NS}.getEpoch`, { params: { convoId: convo.id } })
    expect(epoch.body).toEqual({ convoId: convo.id, currentEpoch: 1 })
    const commits = await t.call<{ commits: Array<Record<string, unknown>> }>(bob, `${NS}.getCommits`, {
      params: { convoId: convo.id, fromEpoch: 0 },
    })
    expect(commits.status).toBe(200)
    expect(commits.body.commits).toEqual([
      { epoch: 0, sender: alice.did, commitData: { $bytes: b64(commit) }, createdAt: expect.any(String) },
    ])
  })

  it('is naturally idempotent: all already members succeeds, changes nothing, keeps the epoch', async () => {
    const convo = await createConvo(t, alice, [bob])
    const again = await t.call(alice, `${NS}.addMembers`, {
      input: { convoId: convo.id, didList: [bob.did, alice.did], commit: b64(randomBytes(16)) },
    })
    expect(again).toMatchObject({ status: 200, body: { success: true, newEpoch: 0 } })
    const commits = await t.call<{ commits: unknown[] }>(alice, `${NS}.getCommits`, {
      params: { convoId: convo.id, fromEpoch: 0 },
    })
    expect(commits.body.commits).toEqual([])
  })

  it('refuses non-members (403), unknown conversations (404) and too many members', async () => {
    const convo = await createConvo(t, alice, [bob])
    const byEve = await t.call(eve, `${NS}.addMembers`, { input: { convoId: convo.id, didList: [eve.did] } })
    expect(byEve.status).toBe(403)
    expect(byEve.body.error).toBe('NotMember')
    const missing = await t.call(alice, `${NS}.addMembers`, { input: { convoId: 'nope', didList: [eve.did] } })
    expect(missing.status).toBe(404)
    expect(missing.body.error).toBe('ConvoNotFound')
    const extra = await Promise.all([1, 2, 3].map(() => TestUser.create()))
    const tooMany = await t.call(alice, `${NS}.addMembers`, {
      input: { convoId: convo.id, didList: extra.map((u) => u.did) },
    })
    expect(tooMany.status).toBe(400)
    expect(tooMany.body.error).toBe('TooManyMembers')
  })

  it('lets exactly one of two commits racing for the same epoch win', async () => {
    const convo = await createConvo(t, alice, [bob])
    const [one, two] = await Promise.all([
      t.call(alice, `${NS}.addMembers`, { input: { convoId: convo.id, didList: [carol.did], commit: b64(randomBytes(8)), epoch: 0 } }),
      t.call(bob, `${NS}.addMembers`, { input: { convoId: convo.id, didList: [eve.did], commit: b64(randomBytes(8)), epoch: 0 } }),
    ])
    const statuses = [one.status, two.status].sort()
    expect(statuses).toEqual([200, 409])
    expect([one, two].find((r) => r.status === 409)?.body.error).toBe('EpochMismatch')
    const epoch = await t.call(alice, `${NS}.getEpoch`, { params: { convoId: convo.id } })
    expect(epoch.body.currentEpoch).toBe(1)
  })
})

describe('leaveConvo', () => {
  it('leaves, is naturally idempotent, and a former member loses access', async () => {
    const convo = await createConvo(t, alice, [bob])
    const first = await t.call(bob, `${NS}.leaveConvo`, { input: { convoId: convo.id, commit: b64(randomBytes(8)) } })
    expect(first).toMatchObject({ status: 200, body: { success: true, newEpoch: 1 } })
    const second = await t.call(bob, `${NS}.leaveConvo`, { input: { convoId: convo.id } })
    expect(second).toMatchObject({ status: 200, body: { success: true, newEpoch: 1 } })
    const read = await t.call(bob, `${NS}.getMessages`, { params: { convoId: convo.id } })
    expect(read.status).toBe(403)
    const convos = await t.call<{ conversations: Array<{ id: string }> }>(bob, `${NS}.getConvos`)
    expect(convos.body.conversations.map((c) => c.id)).not.toContain(convo.id)
  })

  it('removes another member with targetDid, refuses the last member and strangers', async () => {
    const convo = await createConvo(t, alice, [bob])
    const removed = await t.call(alice, `${NS}.leaveConvo`, { input: { convoId: convo.id, targetDid: bob.did } })
    expect(removed.status).toBe(200)
    const last = await t.call(alice, `${NS}.leaveConvo`, { input: { convoId: convo.id } })
    expect(last.status).toBe(400)
    expect(last.body.error).toBe('LastMember')
    const stranger = await t.call(eve, `${NS}.leaveConvo`, { input: { convoId: convo.id } })
    expect(stranger.status).toBe(403)
    const notThere = await t.call(alice, `${NS}.leaveConvo`, { input: { convoId: convo.id, targetDid: eve.did } })
    expect(notThere.status).toBe(400)
    expect(notThere.body.error).toBe('NotMember')
  })

  it('refuses a commit built on a past epoch', async () => {
    const convo = await createConvo(t, alice, [bob, carol])
    const res = await t.call(alice, `${NS}.leaveConvo`, {
      input: { convoId: convo.id, targetDid: carol.did, commit: b64(randomBytes(8)), epoch: 3 },
    })
    expect(res.status).toBe(409)
    expect(res.body.error).toBe('EpochMismatch')
  })
})

describe('getEpoch and getCommits', () => {
  it('returns commits of an epoch range in order and refuses bad ranges', async () => {
    const convo = await createConvo(t, alice)
    const members = await Promise.all([1, 2, 3].map(() => TestUser.create()))
    for (const [i, m] of members.entries()) {
      const r = await t.call(alice, `${NS}.addMembers`, {
        input: { convoId: convo.id, didList: [m.did], commit: b64(Buffer.from([i])), epoch: i },
      })
      expect(r.body.newEpoch).toBe(i + 1)
    }
    const range = await t.call<{ commits: Array<{ epoch: number }> }>(alice, `${NS}.getCommits`, {
      params: { convoId: convo.id, fromEpoch: 1, toEpoch: 2 },
    })
    expect(range.body.commits.map((c) => c.epoch)).toEqual([1, 2])
    const reversed = await t.call(alice, `${NS}.getCommits`, { params: { convoId: convo.id, fromEpoch: 2, toEpoch: 1 } })
    expect(reversed.status).toBe(400)
    expect(reversed.body.error).toBe('InvalidEpochRange')
    const future = await t.call(alice, `${NS}.getCommits`, { params: { convoId: convo.id, fromEpoch: 9 } })
    expect(future.body.error).toBe('InvalidEpochRange')
    const stranger = await t.call(eve, `${NS}.getEpoch`, { params: { convoId: convo.id } })
    expect(stranger.status).toBe(403)
    const unknown = await t.call(alice, `${NS}.getCommits`, { params: { convoId: 'missing', fromEpoch: 0 } })
    expect(unknown.status).toBe(404)
  })
})
