import { beforeAll, describe, expect, it } from 'vitest'
import { NSID, TestUser, type TestApp } from '../helpers/index.js'
import { testAppForFile } from '../helpers/per-file.js'
import { expectRefusal } from '../helpers/refusal.js'

const t: TestApp = testAppForFile({ config: { MAX_MEMBERS_PER_CONVO: '6' } })
let alice: TestUser
let bob: TestUser
let carol: TestUser
let dave: TestUser
let eve: TestUser

beforeAll(async () => {
  const users = await Promise.all([1, 2, 3, 4, 5].map(() => TestUser.create()))
  ;[alice, bob, carol, dave, eve] = users as [TestUser, TestUser, TestUser, TestUser, TestUser]
})

async function membersOf(user: TestUser, convoId: string) {
  const convo = (await t.call(user, NSID.getConvos)).body.conversations.find((c) => c.id === convoId)
  return new Map((convo?.members ?? []).map((m) => [m.did, m]))
}

const role = (
  caller: TestUser,
  nsid: typeof NSID.promoteAdmin | typeof NSID.demoteAdmin,
  convoId: string,
  target: TestUser,
) => t.call(caller, nsid, { input: { convoId, targetDid: target.did } })

const adminsOf = async (convoId: string) =>
  (
    await t.ctx.db
      .selectFrom('member')
      .select('did')
      .where('convo_id', '=', convoId)
      .where('left_at', 'is', null)
      .where('role', '=', 'admin')
      .execute()
  )
    .map((m) => m.did)
    .sort()

describe('admins', () => {
  it('are the creator first, then whom an admin promotes: memberView says who, since when, and by whom', async () => {
    const convo = await t.seed.createConvo(alice, [bob, carol])
    const creator = convo.members.find((m) => m.did === alice.did)
    expect(creator).toMatchObject({ isAdmin: true, promotedAt: convo.createdAt })
    expect(creator?.promotedBy).toBeUndefined()
    expect(convo.members.find((m) => m.did === bob.did)).toMatchObject({ isAdmin: false })

    const promoted = await t.call(alice, NSID.promoteAdmin, { input: { convoId: convo.id, targetDid: bob.did } })
    expect(promoted.body).toEqual({ ok: true, promotedAt: expect.any(String) })
    // Client-era clients name the conversation by its group id.
    const moderator = await t.call(bob, NSID.promoteModerator, {
      input: { convoId: convo.groupId, targetDid: carol.did },
    })
    expect(moderator.body.ok).toBe(true)
    const members = await membersOf(carol, convo.id)
    expect(members.get(bob.did)).toMatchObject({
      isAdmin: true,
      promotedAt: promoted.body.promotedAt,
      promotedBy: alice.did,
    })
    expect(members.get(carol.did)).toMatchObject({ isAdmin: false, isModerator: true, promotedBy: bob.did })
    expect(members.get(alice.did)?.isAdmin).toBe(true)

    expect((await role(bob, NSID.demoteAdmin, convo.groupId, alice)).body).toEqual({ ok: true })
    const after = await membersOf(alice, convo.id)
    expect(after.get(alice.did)).toMatchObject({ isAdmin: false })
    expect(after.get(alice.did)?.promotedAt).toBeUndefined()
    const log = await t.ctx.db
      .selectFrom('admin_action')
      .select(['actor_did', 'action', 'target_did'])
      .where('convo_id', '=', convo.id)
      .orderBy('created_at')
      .execute()
    expect(log.map((a) => [a.actor_did, a.action, a.target_did])).toEqual([
      [alice.did, 'promote_admin', bob.did],
      [bob.did, 'promote_moderator', carol.did],
      [bob.did, 'demote_admin', alice.did],
    ])
  })

  it('refuse non-members, non-admins, forged targets and the last admin, changing nothing', async () => {
    const convo = await t.seed.createConvo(alice, [bob, carol])
    const db = t.ctx.db
    const call = (caller: TestUser, nsid: Parameters<typeof role>[1], target: TestUser) => () =>
      role(caller, nsid, convo.id, target)
    await expectRefusal(db, call(eve, NSID.promoteAdmin, bob), 403, 'NotMember')
    await expectRefusal(db, call(bob, NSID.promoteAdmin, carol), 403, 'NotAdmin')
    await expectRefusal(db, call(alice, NSID.promoteAdmin, eve), 400, 'NotMember')
    await expectRefusal(db, call(alice, NSID.promoteAdmin, alice), 409, 'AlreadyAdmin')
    await expectRefusal(db, call(bob, NSID.demoteAdmin, alice), 403, 'NotAdmin')
    await expectRefusal(db, call(alice, NSID.demoteAdmin, bob), 400, 'NotAdminTarget')
    expect(await expectRefusal(db, call(alice, NSID.demoteAdmin, alice), 409, 'LastAdmin')).toMatch(
      /last admin: make another member admin first/,
    )
    await expectRefusal(
      db,
      () => t.call(alice, NSID.promoteAdmin, { input: { convoId: 'nosuchconvo', targetDid: bob.did } }),
      404,
      'ConvoNotFound',
    )
    const moderator =
      (caller: TestUser, nsid: typeof NSID.promoteModerator | typeof NSID.demoteModerator, target: TestUser) => () =>
        t.call(caller, nsid, { input: { convoId: convo.id, targetDid: target.did } })
    await expectRefusal(db, moderator(alice, NSID.promoteModerator, alice), 400, 'IsAdmin')
    await expectRefusal(db, moderator(bob, NSID.promoteModerator, carol), 403, 'NotAdmin')
    await expectRefusal(db, moderator(alice, NSID.demoteModerator, bob), 400, 'NotModerator')
    expect((await moderator(alice, NSID.promoteModerator, bob)()).status).toBe(200)
    await expectRefusal(db, moderator(alice, NSID.promoteModerator, bob), 409, 'AlreadyModerator')
    // A member cannot demote a moderator; the moderator may step down.
    await expectRefusal(db, moderator(carol, NSID.demoteModerator, bob), 403, 'NotAdmin')
    expect((await moderator(bob, NSID.demoteModerator, bob)()).body).toEqual({ ok: true })
  })

  it('demoting each other at once, two admins leave one admin; removing each other at once, one member', async () => {
    for (let round = 0; round < 4; round++) {
      const convo = await t.seed.createConvo(alice, [bob, carol])
      expect((await role(alice, NSID.promoteAdmin, convo.id, bob)).status).toBe(200)
      const answers = await Promise.all([
        role(alice, NSID.demoteAdmin, convo.id, bob),
        role(bob, NSID.demoteAdmin, convo.id, alice),
      ])
      expect(answers.map((a) => a.status).sort()).toEqual([200, 403])
      expect(await adminsOf(convo.id)).toHaveLength(1)
    }
    const convo = await t.seed.createConvo(alice, [bob, carol])
    expect((await role(alice, NSID.promoteAdmin, convo.id, bob)).status).toBe(200)
    const removals = await Promise.all([
      t.call(alice, NSID.leaveConvo, { input: { convoId: convo.id, targetDid: bob.did } }),
      t.call(bob, NSID.leaveConvo, { input: { convoId: convo.id, targetDid: alice.did } }),
    ])
    expect(removals.map((r) => [r.status, r.body.error ?? null]).sort()).toEqual([
      [200, null],
      [403, 'NotMember'],
    ])
    expect(await adminsOf(convo.id)).toHaveLength(1)
  })

  it('never leave a conversation without one: when the last leaves, the longest-standing moderator (or member) is made admin', async () => {
    const convo = await t.seed.createConvo(alice, [bob, carol])
    await t.seed.addMembers(alice, convo.id, [dave])
    expect(
      (await t.call(alice, NSID.promoteModerator, { input: { convoId: convo.id, targetDid: dave.did } })).status,
    ).toBe(200)
    expect((await t.call(alice, NSID.leaveConvo, { input: { convoId: convo.id } })).status).toBe(200)
    expect(await adminsOf(convo.id)).toEqual([dave.did])
    const heir = (await membersOf(bob, convo.id)).get(dave.did)
    expect(heir).toMatchObject({ isAdmin: true, promotedAt: expect.any(String) })
    expect(heir?.promotedBy).toBeUndefined()
    // Without moderators, the longest-standing member; a role ends with the membership.
    expect((await t.call(dave, NSID.leaveConvo, { input: { convoId: convo.id } })).status).toBe(200)
    expect((await adminsOf(convo.id)).length).toBe(1)
    const [next] = await adminsOf(convo.id)
    expect([bob.did, carol.did]).toContain(next)
    const actions = await t.ctx.db
      .selectFrom('admin_action')
      .select(['actor_did', 'action'])
      .where('convo_id', '=', convo.id)
      .where('action', '=', 'succession')
      .execute()
    expect(actions).toEqual([
      { actor_did: null, action: 'succession' },
      { actor_did: null, action: 'succession' },
    ])
  })
})

describe('leaveConvo removing another member', () => {
  it('is for admins; committing the removal of someone who already left is for every member', async () => {
    const convo = await t.seed.createConvo(alice, [bob, carol, dave])
    const removeDave = (caller: TestUser) => () =>
      t.call(caller, NSID.leaveConvo, { input: { convoId: convo.id, targetDid: dave.did } })
    expect(await expectRefusal(t.ctx.db, removeDave(bob), 403, 'NotAdmin')).toMatch(/only admins remove other members/)
    expect((await removeDave(alice)()).status).toBe(200)
    // Carol leaves; bob, no admin, commits her removal.
    expect((await t.call(carol, NSID.leaveConvo, { input: { convoId: convo.id } })).status).toBe(200)
    expect((await t.seed.removeMember(bob, convo.id, carol)).body).toEqual({ success: true, newEpoch: 2 })
    const log = await t.ctx.db
      .selectFrom('admin_action')
      .select(['actor_did', 'action', 'target_did'])
      .where('convo_id', '=', convo.id)
      .execute()
    expect(log).toEqual([{ actor_did: alice.did, action: 'remove_member', target_did: dave.did }])
  })
})

describe('policy', () => {
  it('is the default until an admin changes it; every member reads it, others are refused', async () => {
    const convo = await t.seed.createConvo(alice, [bob])
    const read = await t.call(bob, NSID.getPolicy, { params: { convoId: convo.id } })
    expect(read.body.policy).toEqual({
      convoId: convo.groupId.toLowerCase(),
      allowInvites: false,
      adminOnlyInvites: true,
      allowMemberAdd: true,
      allowMemberRemove: false,
      requireAdminApproval: false,
      maxMembers: 6,
      updatedAt: convo.createdAt,
    })
    await expectRefusal(
      t.ctx.db,
      () => t.call(eve, NSID.getPolicy, { params: { convoId: convo.id } }),
      403,
      'NotMember',
    )
    const changed = await t.call(alice, NSID.updatePolicy, { input: { convoId: convo.groupId, maxMembers: 3 } })
    expect(changed.body.policy).toMatchObject({ maxMembers: 3, allowMemberAdd: true, updatedBy: alice.did })
    expect((await t.call(bob, NSID.getPolicy, { params: { convoId: convo.id } })).body).toEqual(changed.body)
    expect((await t.call(bob, NSID.getPolicy, { params: { convoId: convo.groupId } })).body).toEqual(changed.body)
  })

  it('refuses non-admins, no fields, a size below the members or above the server, and what the server cannot honour', async () => {
    const convo = await t.seed.createConvo(alice, [bob, carol])
    const update = (caller: TestUser, fields: object) => () =>
      t.call(caller, NSID.updatePolicy, { input: { convoId: convo.id, ...fields } })
    await expectRefusal(t.ctx.db, update(eve, { maxMembers: 4 }), 403, 'NotMember')
    await expectRefusal(t.ctx.db, update(bob, { maxMembers: 4 }), 403, 'NotAdmin')
    await expectRefusal(t.ctx.db, update(alice, {}), 400, 'NoFieldsProvided')
    await expectRefusal(t.ctx.db, update(alice, { maxMembers: 2 }), 400, 'InvalidMaxMembers')
    expect(await expectRefusal(t.ctx.db, update(alice, { maxMembers: 7 }), 400, 'InvalidMaxMembers')).toMatch(
      /this server's limit \(6\)/,
    )
    await expectRefusal(t.ctx.db, update(alice, { allowInvites: true }), 400, 'InvalidRequest')
    await expectRefusal(t.ctx.db, update(alice, { requireAdminApproval: true }), 400, 'InvalidRequest')
  })

  it('decides who adds and how many members there may be', async () => {
    const convo = await t.seed.createConvo(alice, [bob])
    expect(
      (await t.call(alice, NSID.updatePolicy, { input: { convoId: convo.id, allowMemberAdd: false, maxMembers: 3 } }))
        .status,
    ).toBe(200)
    const byBob = await t.seed.prepareCommit(bob, convo.id, { add: [carol] })
    const refused = await t.call(bob, NSID.addMembers, {
      input: {
        convoId: convo.id,
        didList: [carol.did],
        commit: Buffer.from(byBob.commit).toString('base64'),
        welcomeMessage: Buffer.from(byBob.welcome!).toString('base64'),
      },
    })
    expect([refused.status, refused.body.error]).toEqual([403, 'NotAdmin'])
    expect((await t.seed.addMembers(alice, convo.id, [carol])).status).toBe(200)
    const tooMany = await t.seed.addMembers(alice, convo.id, [dave])
    expect([tooMany.status, tooMany.body.error]).toEqual([400, 'TooManyMembers'])
    expect(tooMany.body.message).toMatch(/at most 3 members/)
  })
})

describe('chat requests', () => {
  it('are none (this server has no mailbox); the settings of a mailbox it does not have answer 501', async () => {
    expect((await t.call(alice, NSID.listChatRequests)).body).toEqual({ requests: [] })
    expect((await t.call(alice, NSID.listChatRequests, { params: { status: 'accepted', limit: 5 } })).body).toEqual({
      requests: [],
    })
    expect((await t.call(alice, NSID.getRequestCount)).body).toEqual({ pendingCount: 0 })
    const settings = await t.callRaw(alice, NSID.getChatRequestSettings)
    expect([settings.status, settings.body?.error]).toEqual([501, 'MethodNotImplemented'])
  })
})
