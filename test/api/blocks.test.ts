import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  addMembersInput,
  BLOCKED_AT,
  NSID,
  startFakeAppView,
  startTestApp,
  TestUser,
  type FakeAppView,
  type TestApp,
} from '../helpers/index.js'
import { expectRefusal } from '../helpers/refusal.js'

let appview: FakeAppView
/** Fails closed (the default), and one that fails open. */
let t: TestApp
let open: TestApp
let alice: TestUser
let bob: TestUser
let carol: TestUser
let dave: TestUser
let eve: TestUser

beforeAll(async () => {
  appview = await startFakeAppView()
  const config = { APPVIEW_URL: appview.url, APPVIEW_TIMEOUT_MS: '300', BLOCKS_CACHE_SECONDS: '60' }
  t = await startTestApp({ config })
  open = await startTestApp({ config: { ...config, BLOCKS_FAIL_OPEN: 'true' }, testDb: t.testDb })
  const users = await Promise.all([1, 2, 3, 4, 5].map(() => TestUser.create()))
  ;[alice, bob, carol, dave, eve] = users as [TestUser, TestUser, TestUser, TestUser, TestUser]
})
afterAll(async () => {
  await open?.close()
  await t?.close()
  await appview?.close()
})

describe('adds between users who block each other', () => {
  it('are refused by createConvo (MutualBlockDetected), whichever way the block goes, before any key package is reserved', async () => {
    appview.block(carol, alice)
    const prepared = await t.seed.prepareConvo(alice, [bob, carol])
    const create = () => t.call(alice, NSID.createConvo, { input: prepared.input })
    expect(await expectRefusal(t.ctx.db, create, 403, 'MutualBlockDetected')).toBe(
      `${carol.did} blocks ${alice.did} on Bluesky: users who block each other are not put in one conversation`,
    )
    const reserved = await t.ctx.db
      .selectFrom('key_package')
      .select('reserved_convo_id')
      .where('owner_did', 'in', [bob.did, carol.did])
      .where('reserved_convo_id', 'is not', null)
      .execute()
    expect(reserved).toEqual([])
    // Once lifted (and forgotten: the user reports it), the same request goes through.
    appview.unblock(carol, alice)
    await t.call(carol, NSID.handleBlockChange, {
      input: { blockerDid: carol.did, blockedDid: alice.did, action: 'removed' },
    })
    const created = await create()
    expect(created.status).toBe(200)
    prepared.created(created.body)
  })

  it('are refused by addMembers (BlockedByMember) between two added, or between one added and a member', async () => {
    const convo = await t.seed.createConvo(alice, [bob])
    appview.block(carol, dave)
    appview.block(dave, bob, { viaList: true })
    const adding = await t.seed.prepareCommit(alice, convo.id, { add: [carol, dave] })
    const add = () => t.call(alice, NSID.addMembers, { input: addMembersInput(convo.id, [carol, dave], adding) })
    expect(await expectRefusal(t.ctx.db, add, 403, 'BlockedByMember')).toMatch(
      `${carol.did} blocks ${dave.did} on Bluesky: users who block each other are not put in one conversation (and 1 more block(s))`,
    )
    // Carol lifts hers (and says so); dave's through a mod list stands.
    appview.unblock(carol, dave)
    await t.call(carol, NSID.handleBlockChange, {
      input: { blockerDid: carol.did, blockedDid: dave.did, action: 'removed' },
    })
    expect(await expectRefusal(t.ctx.db, add, 403, 'BlockedByMember')).toMatch(
      `${dave.did} blocks ${bob.did} on Bluesky`,
    )
  })

  it('ask the AppView one call per user added, for all the others at once, and keep its answer', async () => {
    const [a, b, c, d] = await Promise.all([1, 2, 3, 4].map(() => TestUser.create()))
    const convo = await t.seed.createConvo(a!, [b!, c!])
    const calls = appview.calls.length
    expect((await t.seed.addMembers(a!, convo.id, [d!])).status).toBe(200)
    const asked = appview.calls.slice(calls)
    expect(asked.map((call) => [call.actor, [...call.others].sort()])).toEqual([
      [d!.did, [a!.did, b!.did, c!.did].sort()],
    ])
    // Asked again within BLOCKS_CACHE_SECONDS, it is not called: d leaves and is added back.
    await t.call(a!, NSID.leaveConvo, { input: { convoId: convo.id, targetDid: d!.did } })
    expect((await t.seed.addMembers(a!, convo.id, [d!])).status).toBe(200)
    expect(appview.calls.length).toBe(calls + 1)
  })

  it('count a block the user reported itself, and the AppView not knowing a user means no Bluesky blocks', async () => {
    const [a, b] = await Promise.all([1, 2].map(() => TestUser.create()))
    appview.unknown.add(b!.did)
    const reported = await t.call(b!, NSID.handleBlockChange, {
      input: { blockerDid: b!.did, blockedDid: a!.did, action: 'created' },
    })
    expect(reported.body).toEqual({ affectedConvos: [] })
    const prepared = await t.seed.prepareConvo(a!, [b!])
    const refused = await t.call(a!, NSID.createConvo, { input: prepared.input })
    expect([refused.status, refused.body.error]).toEqual([403, 'MutualBlockDetected'])
    await t.call(b!, NSID.handleBlockChange, { input: { blockerDid: b!.did, blockedDid: a!.did, action: 'removed' } })
    expect((await t.call(a!, NSID.createConvo, { input: prepared.input })).status).toBe(200)
  })
})

describe('when the AppView cannot say', () => {
  it('adds are refused, saying the server fails closed; one failing open lets them through', async () => {
    const [a, b] = await Promise.all([1, 2].map(() => TestUser.create()))
    for (const failure of ['error', 'garbage', 'silent'] as const) {
      appview.fail(failure)
      const prepared = await t.seed.prepareConvo(a!, [b!])
      const message = await expectRefusal(
        t.ctx.db,
        () => t.call(a!, NSID.createConvo, { input: prepared.input }),
        503,
        'BlueskyServiceUnavailable',
      )
      expect(message).toMatch(/refuses adds it cannot check \(it fails closed: BLOCKS_FAIL_OPEN is off\)/)
      expect(message).toMatch(
        {
          error: /answered HTTP 502/,
          garbage: /answered without a list of relationships/,
          silent: /no answer within 300 ms/,
        }[failure],
      )
    }
    const prepared = await open.seed.prepareConvo(a!, [b!])
    const created = await open.call(a!, NSID.createConvo, { input: prepared.input })
    expect(created.status).toBe(200)
    appview.fail(undefined)
  })
})

describe('checkBlocks', () => {
  it('lists every block among the users, with its record and when it was made', async () => {
    const [a, b, c] = await Promise.all([1, 2, 3].map(() => TestUser.create()))
    const uri = appview.block(a!, c!)
    const listUri = appview.block(c!, b!, { viaList: true })
    const res = await t.call(eve, NSID.checkBlocks, { params: { dids: [a!.did, b!.did, c!.did] } })
    expect(res.body.blocks).toEqual(
      expect.arrayContaining([
        { blockerDid: a!.did, blockedDid: c!.did, blockUri: uri, createdAt: BLOCKED_AT },
        { blockerDid: c!.did, blockedDid: b!.did, blockUri: listUri, createdAt: BLOCKED_AT },
      ]),
    )
    expect(res.body.blocks).toHaveLength(2)
    expect(Date.parse(res.body.checkedAt)).toBeGreaterThan(Date.now() - 60_000)
  })

  it('refuses more than 100 users, and answers 503 when the AppView cannot say', async () => {
    const many = Array.from({ length: 101 }, (_, i) => `did:plc:${String(i).padStart(24, 'a')}`)
    await expectRefusal(t.ctx.db, () => t.call(eve, NSID.checkBlocks, { params: { dids: many } }), 400, 'TooManyDids')
    const [a, b] = await Promise.all([1, 2].map(() => TestUser.create()))
    appview.fail('error')
    const res = await t.call(eve, NSID.checkBlocks, { params: { dids: [a!.did, b!.did] } })
    appview.fail(undefined)
    expect([res.status, res.body.error]).toEqual([503, 'BlueskyServiceUnavailable'])
  })
})

describe('getBlockStatus', () => {
  it("lists the blocks between a conversation's current members, for its admins", async () => {
    const convo = await t.seed.createConvo(alice, [eve])
    const x = await TestUser.create()
    await t.seed.addMembers(alice, convo.id, [x])
    const uri = appview.block(x, eve)
    // What the server kept of the two is forgotten when one of them reports it.
    await t.call(x, NSID.handleBlockChange, {
      input: { blockerDid: x.did, blockedDid: eve.did, action: 'created', blockUri: uri },
    })
    const res = await t.call(alice, NSID.getBlockStatus, { params: { convoId: convo.id } })
    expect(res.body).toMatchObject({
      convoId: convo.groupId.toLowerCase(),
      hasConflicts: true,
      memberCount: 3,
      blocks: [{ blockerDid: x.did, blockedDid: eve.did, blockUri: uri, createdAt: BLOCKED_AT }],
    })
    await expectRefusal(
      t.ctx.db,
      () => t.call(eve, NSID.getBlockStatus, { params: { convoId: convo.id } }),
      403,
      'NotAdmin',
    )
    await expectRefusal(
      t.ctx.db,
      () => t.call(bob, NSID.getBlockStatus, { params: { convoId: convo.id } }),
      403,
      'NotMember',
    )
  })
})

describe('handleBlockChange', () => {
  it("records the caller's own block, names the conversations both share for their admins, and removes no one", async () => {
    const [blocker, blocked] = (await Promise.all([1, 2].map(() => TestUser.create()))) as [TestUser, TestUser]
    const convo = await t.seed.createConvo(alice, [blocker, blocked])
    const uri = `at://${blocker.did}/app.bsky.graph.block/3kty2fyl3b22a`
    const res = await t.call(blocker, NSID.handleBlockChange, {
      input: { blockerDid: blocker.did, blockedDid: blocked.did, action: 'created', blockUri: uri },
    })
    expect(res.body.affectedConvos).toEqual(
      expect.arrayContaining([
        { convoId: convo.groupId.toLowerCase(), action: 'requires_resolution', adminNotified: false },
      ]),
    )
    const stored = await t.ctx.db.selectFrom('user_block').selectAll().where('blocker_did', '=', blocker.did).execute()
    expect(stored.map((b) => [b.blocked_did, b.block_uri])).toEqual([[blocked.did, uri]])
    expect(
      (await t.call(alice, NSID.getConvos)).body.conversations.find((c) => c.id === convo.id)?.members,
    ).toHaveLength(3)
    const lifted = await t.call(blocker, NSID.handleBlockChange, {
      input: { blockerDid: blocker.did, blockedDid: blocked.did, action: 'removed' },
    })
    expect(lifted.body.affectedConvos).toEqual(
      expect.arrayContaining([{ convoId: convo.groupId.toLowerCase(), action: 'no_action', adminNotified: false }]),
    )
    expect(
      await t.ctx.db.selectFrom('user_block').selectAll().where('blocker_did', '=', blocker.did).execute(),
    ).toEqual([])
  })

  it("refuses a block someone else made, a record in another's repository, blocking oneself and unknown actions", async () => {
    const change = (input: object) => () =>
      t.call(carol, NSID.handleBlockChange, {
        input: { blockerDid: carol.did, blockedDid: dave.did, action: 'created', ...input },
      })
    expect(
      await expectRefusal(t.ctx.db, change({ blockerDid: dave.did, blockedDid: carol.did }), 403, 'BlockNotVerified'),
    ).toMatch(/only the blocks you made/)
    await expectRefusal(
      t.ctx.db,
      change({ blockUri: `at://${dave.did}/app.bsky.graph.block/3kty2fyl3b22a` }),
      403,
      'BlockNotVerified',
    )
    await expectRefusal(t.ctx.db, change({ blockedDid: carol.did }), 400, 'InvalidRequest')
    await expectRefusal(t.ctx.db, change({ action: 'exploded' }), 400, 'InvalidRequest')
  })
})
