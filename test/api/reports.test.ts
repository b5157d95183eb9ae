import { beforeAll, describe, expect, it } from 'vitest'
import { bytesJson, NSID, TestUser, type TestApp } from '../helpers/index.js'
import { testAppForFile } from '../helpers/per-file.js'
import { expectRefusal } from '../helpers/refusal.js'

const t: TestApp = testAppForFile()
let alice: TestUser
let bob: TestUser
let carol: TestUser
let eve: TestUser

beforeAll(async () => {
  const users = await Promise.all([1, 2, 3, 4].map(() => TestUser.create()))
  ;[alice, bob, carol, eve] = users as [TestUser, TestUser, TestUser, TestUser]
})

const text = (s: string) => new TextEncoder().encode(s)

const report = (caller: TestUser, convoId: string, target: TestUser, extra: object = {}) =>
  t.call(caller, NSID.reportMember, {
    input: {
      convoId,
      reportedDid: target.did,
      category: 'harassment',
      encryptedContent: bytesJson(text('he keeps insulting me')),
      ...extra,
    },
  })

describe('reportMember', () => {
  it('stores a report about messages the reporter received, for the admins and moderators, as it was sent', async () => {
    const convo = await t.seed.createConvo(alice, [bob, carol])
    const sent = await t.seed.sendMessage(bob, convo.id)
    const res = await report(carol, convo.id, bob, { messageIds: [sent.body.messageId] })
    expect(res.body).toEqual({ reportId: expect.any(String), submittedAt: expect.any(String) })
    const listed = await t.call(alice, NSID.getReports, { params: { convoId: convo.id } })
    expect(listed.body.reports).toEqual([
      {
        id: res.body.reportId,
        reporterDid: carol.did,
        reportedDid: bob.did,
        encryptedContent: bytesJson(text('he keeps insulting me')),
        createdAt: res.body.submittedAt,
        status: 'pending',
      },
    ])
    // The server can read it: it is stored as sent.
    const stored = await t.ctx.db.selectFrom('member_report').select(['content', 'message_ids']).executeTakeFirst()
    expect([Buffer.from(stored!.content).toString(), stored!.message_ids]).toEqual([
      'he keeps insulting me',
      [sent.body.messageId],
    ])
    // A moderator reads them too; a member does not.
    await t.call(alice, NSID.promoteModerator, { input: { convoId: convo.id, targetDid: carol.did } })
    expect((await t.call(carol, NSID.getReports, { params: { convoId: convo.id } })).body.reports).toHaveLength(1)
  })

  it('refuses strangers, reporting oneself or a non-member, messages the reporter never saw, and a flood', async () => {
    const convo = await t.seed.createConvo(alice, [bob, carol])
    const before = await t.seed.sendMessage(alice, convo.id)
    const db = t.ctx.db
    await expectRefusal(db, () => report(eve, convo.id, bob), 403, 'NotMember')
    await expectRefusal(db, () => report(carol, convo.id, carol), 400, 'CannotReportSelf')
    await expectRefusal(db, () => report(carol, convo.id, eve), 400, 'TargetNotMember')
    await expectRefusal(db, () => report(carol, 'nosuchconvo', bob), 404, 'ConvoNotFound')
    await expectRefusal(
      db,
      () => report(carol, convo.id, bob, { messageIds: ['not-a-message'] }),
      400,
      'InvalidRequest',
    )
    // Dave joined after alice's message: he did not receive it.
    const dave = await TestUser.create()
    await t.seed.addMembers(alice, convo.id, [dave])
    expect(
      await expectRefusal(
        db,
        () => report(dave, convo.id, alice, { messageIds: [before.body.messageId] }),
        400,
        'InvalidRequest',
      ),
    ).toMatch(/not a message of this conversation that you received/)
    await expectRefusal(db, () => report(carol, convo.id, bob, { category: 'x'.repeat(65) }), 400, 'InvalidRequest')
    const tooLong = await t.callRaw(carol, NSID.reportMember, {
      input: {
        convoId: convo.id,
        reportedDid: bob.did,
        category: 'spam',
        encryptedContent: { $bytes: Buffer.alloc(51201).toString('base64') },
      },
    })
    expect(tooLong.status).toBe(400)
    for (let i = 0; i < 10; i++) expect((await report(carol, convo.id, bob)).status).toBe(200)
    await expectRefusal(db, () => report(carol, convo.id, bob), 400, 'TooManyReports')
  })
})

describe('getReports and resolveReport', () => {
  it('are for admins of the conversation: resolving records who did what, once', async () => {
    const convo = await t.seed.createConvo(alice, [bob, carol])
    const first = (await report(carol, convo.id, bob)).body.reportId
    const second = (await report(bob, convo.id, carol, { category: 'spam' })).body.reportId
    const db = t.ctx.db
    await expectRefusal(db, () => t.call(bob, NSID.getReports, { params: { convoId: convo.id } }), 403, 'NotAdmin')
    await expectRefusal(db, () => t.call(eve, NSID.getReports, { params: { convoId: convo.id } }), 403, 'NotMember')
    const resolve = (caller: TestUser, reportId: string, action: string) => () =>
      t.call(caller, NSID.resolveReport, { input: { reportId, action, notes: 'talked to them' } })
    await expectRefusal(db, resolve(bob, first, 'dismissed'), 403, 'NotAdmin')
    // To a stranger, a report of someone else's conversation does not exist.
    await expectRefusal(db, resolve(eve, first, 'dismissed'), 404, 'ReportNotFound')
    await expectRefusal(db, resolve(alice, 'not-a-report', 'dismissed'), 404, 'ReportNotFound')
    await expectRefusal(db, resolve(alice, first, 'banished'), 400, 'InvalidRequest')
    expect(await expectRefusal(db, resolve(alice, first, 'removed_member'), 400, 'InvalidRequest')).toMatch(
      /still a member; remove them first/,
    )
    expect((await resolve(alice, first, 'dismissed')()).body).toEqual({ ok: true })
    await expectRefusal(db, resolve(alice, first, 'no_action'), 409, 'AlreadyResolved')
    expect((await t.call(alice, NSID.leaveConvo, { input: { convoId: convo.id, targetDid: carol.did } })).status).toBe(
      200,
    )
    expect((await resolve(alice, second, 'removed_member')()).status).toBe(200)

    const pending = await t.call(alice, NSID.getReports, { params: { convoId: convo.id, status: 'pending' } })
    expect(pending.body.reports).toEqual([])
    const all = await t.call(alice, NSID.getReports, { params: { convoId: convo.id } })
    expect(all.body.reports.map((r) => [r.id, r.status, r.resolvedBy])).toEqual([
      [second, 'resolved', alice.did],
      [first, 'dismissed', alice.did],
    ])
    expect(all.body.reports.every((r) => typeof r.resolvedAt === 'string')).toBe(true)
  })
})

describe('getAdminStats', () => {
  it("counts one conversation's reports, resolutions, removals and resolved block conflicts, for its admins only", async () => {
    const convo = await t.seed.createConvo(alice, [bob, carol])
    const first = (await report(carol, convo.id, bob)).body.reportId
    await report(bob, convo.id, carol, { category: 'spam' })
    await report(alice, convo.id, carol, { category: 'something_new' })
    await t.call(alice, NSID.resolveReport, { input: { reportId: first, action: 'no_action' } })
    // Carol reports blocking bob; alice then removes bob.
    await t.call(carol, NSID.handleBlockChange, {
      input: { blockerDid: carol.did, blockedDid: bob.did, action: 'created' },
    })
    await t.call(alice, NSID.leaveConvo, { input: { convoId: convo.id, targetDid: bob.did } })

    const res = await t.call(alice, NSID.getAdminStats, { params: { convoId: convo.id } })
    expect(res.body).toEqual({
      convoId: convo.groupId.toLowerCase(),
      generatedAt: expect.any(String),
      stats: {
        totalReports: 3,
        pendingReports: 2,
        resolvedReports: 1,
        totalRemovals: 1,
        blockConflictsResolved: 1,
        averageResolutionTimeHours: 0,
        reportsByCategory: {
          harassment: 1,
          spam: 1,
          hateSpeech: 0,
          violence: 0,
          sexualContent: 0,
          impersonation: 0,
          privacyViolation: 0,
          otherCategory: 1,
        },
      },
    })
    const later = await t.call(alice, NSID.getAdminStats, {
      params: { convoId: convo.id, since: new Date(Date.now() + 60_000).toISOString() },
    })
    expect(later.body.stats).toMatchObject({ totalReports: 0, totalRemovals: 0 })
  })

  it('refuses members who are not admins, strangers, and server-wide figures to anyone', async () => {
    const convo = await t.seed.createConvo(alice, [bob])
    const db = t.ctx.db
    await expectRefusal(db, () => t.call(bob, NSID.getAdminStats, { params: { convoId: convo.id } }), 403, 'NotAdmin')
    await expectRefusal(db, () => t.call(eve, NSID.getAdminStats, { params: { convoId: convo.id } }), 403, 'NotMember')
    expect(await expectRefusal(db, () => t.call(alice, NSID.getAdminStats), 403, 'NotAdmin')).toMatch(
      /for this server's operators \(npm run admin -- stats\)/,
    )
  })
})
