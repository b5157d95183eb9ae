import { sql } from 'kysely'
import { beforeAll, describe, expect, it } from 'vitest'
import type { Config } from '../../src/config.js'
import { startRetention } from '../../src/workers/index.js'
import {
  bytesJson,
  captureLogs,
  encodeBase64,
  groupInfoOf,
  NSID,
  openStream,
  stateOf,
  TestDevice,
  TestUser,
  type TestApp,
} from '../helpers/index.js'
import { testAppForFile } from '../helpers/per-file.js'

const t: TestApp = testAppForFile()
let alice: TestUser
let bob: TestUser

beforeAll(async () => {
  ;[alice, bob] = (await Promise.all([TestUser.create(), TestUser.create()])) as [TestUser, TestUser]
})

/** One pass of the retention worker, with settings of the test's choosing. */
async function retentionPass(settings: Partial<Config> = {}): Promise<Record<string, unknown>> {
  const { logger, lines } = captureLogs()
  const worker = startRetention(
    { ...t.ctx, config: { ...t.ctx.config, WORKER_BATCH_PAUSE_MS: 0, ...settings } },
    logger,
  )
  await worker.runOnce()
  await worker.stop()
  return lines.find((l) => l.msg === 'retention pass done') ?? {}
}

/** The conversation's messages up to `seq` were sent `days` ago (and it has been waiting since). */
async function age(convoId: string, upToSeq: number, days: number, onlySeq?: number) {
  const when = sql`now() - make_interval(days => ${days})`
  const which = onlySeq === undefined ? sql`seq <= ${upToSeq}` : sql`seq = ${onlySeq}`
  await sql`UPDATE message SET created_at = ${when} WHERE convo_id = ${convoId} AND ${which}`.execute(t.ctx.db)
  await sql`UPDATE commit SET created_at = ${when} WHERE convo_id = ${convoId} AND ${which}`.execute(t.ctx.db)
  await sql`UPDATE convo SET retained_from_at = ${when} WHERE id = ${convoId}`.execute(t.ctx.db)
}

const kept = async (convoId: string) =>
  (await t.ctx.db.selectFrom('message').select('seq').where('convo_id', '=', convoId).orderBy('seq').execute()).map(
    (m) => m.seq,
  )

const messages = (user: TestUser, convoId: string, sinceMessage?: string) =>
  t.call(user, NSID.getMessages, { params: { convoId, ...(sinceMessage ? { sinceMessage } : {}) } })

/** A conversation of alice and bob: seq 1 the commit adding bob, then messages and commits as given. */
async function convoWith(steps: Array<'message' | 'commit'>) {
  const convo = await t.seed.createConvo(alice, [bob])
  const ids: string[] = []
  for (const step of steps) {
    if (step === 'commit') {
      const committed = await t.seed.commitUpdate(alice, convo.id)
      ids.push(committed.body.messageId)
    } else {
      ids.push((await t.seed.sendMessage(bob, convo.id)).body.messageId)
    }
  }
  return { convo, ids }
}

describe('message retention', () => {
  it('deletes what is older than the horizon as a prefix of each conversation; reads and resumes from before it get CursorTooOld', async () => {
    // Seq 1, 2 in epoch 1 (bob joined by the Welcome); 3 a commit (1 -> 2); 4, 5, 6 in epoch 2.
    const { convo, ids } = await convoWith(['message', 'message', 'commit', 'message', 'message', 'message'])
    const events = await t.ctx.db
      .selectFrom('message')
      .select(['seq', 'event_id'])
      .where('convo_id', '=', convo.id)
      .orderBy('seq')
      .execute()
    await age(convo.id, 3, 40)
    // Seq 5 is as old, but seq 4 before it is not: it waits for seq 4.
    await age(convo.id, 5, 40, 5)
    const state = await stateOf(alice, convo.id)
    const groupInfo = await groupInfoOf(state)
    await t.call(alice, NSID.updateGroupInfo, {
      input: { convoId: convo.id, groupInfo: encodeBase64(groupInfo), epoch: Number(state.groupContext.epoch) },
    })

    expect(await retentionPass()).toMatchObject({ messages: 3 })
    expect(await kept(convo.id)).toEqual([4, 5, 6])
    // Its other events from before them (the members' joining) went with them: they hold no position from before.
    const otherEvents = t.ctx.db.selectFrom('convo_event').select('kind').where('convo_id', '=', convo.id)
    expect(await otherEvents.execute()).toEqual([])
    const commits = await t.call(bob, NSID.getCommits, { params: { convoId: convo.id, fromEpoch: 2 } })
    expect(commits.body.commits).toEqual([])
    expect(
      (await t.ctx.db.selectFrom('commit').select('epoch').where('convo_id', '=', convo.id).execute()).length,
    ).toBe(0)
    // The GroupInfo of the current epoch stays: whoever is cut off rejoins from it.
    expect((await t.call(bob, NSID.getGroupInfo, { params: { convoId: convo.id } })).status).toBe(200)

    // Without a cursor, a read starts at the oldest message kept, and finds no gap there.
    const fromStart = (await messages(bob, convo.id)).body
    expect([fromStart.messages.map((m) => m.seq), fromStart.gapInfo?.hasGaps]).toEqual([[4, 5, 6], false])
    // By seq (the client-era paging): from what is kept, or from before it.
    const bySeq = (sinceSeq: number) => t.call(bob, NSID.getMessages, { params: { convoId: convo.groupId, sinceSeq } })
    expect((await bySeq(3)).body.messages.map((m) => m.seq)).toEqual([4, 5, 6])
    expect((await bySeq(0)).body.messages.map((m) => m.seq)).toEqual([4, 5, 6])
    expect([(await bySeq(1)).status, (await bySeq(1)).body.error]).toEqual([400, 'CursorTooOld'])
    // From a message that is gone, or commits that are: the device cannot catch up, and is told to rejoin.
    const fromGone = await messages(bob, convo.id, ids[1])
    expect([fromGone.status, fromGone.body.error]).toEqual([400, 'CursorTooOld'])
    expect(fromGone.body.message).toMatch(/up to seq 3 are no longer kept.*rejoin by external commit/)
    expect((await messages(bob, convo.id, ids[3])).body.messages.map((m) => m.seq)).toEqual([5, 6])
    const oldCommits = await t.call(bob, NSID.getCommits, { params: { convoId: convo.id, fromEpoch: 1 } })
    expect([oldCommits.status, oldCommits.body.error]).toEqual([400, 'CursorTooOld'])
    // A stream resumed from before the horizon (this file's oldest events are this conversation's).
    const resumed = await openStream(t.url, bob, { cursor: String(events[1]!.event_id) })
    expect([resumed.status, resumed.body?.error]).toEqual([400, 'CursorTooOld'])
    const fromKept = await openStream(t.url, bob, { cursor: String(events[2]!.event_id) })
    expect(fromKept.status).toBe(200)
    fromKept.close()

    // Seq 4 ages out: 4 and 5 go together.
    await age(convo.id, 4, 40, 4)
    expect(await retentionPass()).toMatchObject({ messages: 2 })
    expect(await kept(convo.id)).toEqual([6])
  })

  it('refuses a read whose page does not start right after its cursor (a purge ran between the two)', async () => {
    const { convo, ids } = await convoWith(['message', 'message', 'message'])
    await sql`DELETE FROM message WHERE convo_id = ${convo.id} AND seq = 2`.execute(t.ctx.db)
    const res = await messages(bob, convo.id, ids[0])
    expect([res.status, res.body.error]).toEqual([400, 'CursorTooOld'])
    expect(res.body.message).toMatch(/up to seq 2 are no longer kept/)
  })

  it('empties an idle conversation in batches; it goes on from the next seq, and a cursor of before is refused', async () => {
    const { convo, ids } = await convoWith(Array.from({ length: 24 }, () => 'message' as const))
    await age(convo.id, 24, 31)
    expect(await retentionPass({ WORKER_BATCH_SIZE: 10 })).toMatchObject({ messages: 24 })
    expect(await kept(convo.id)).toEqual([])
    const row = await t.ctx.db
      .selectFrom('convo')
      .select(['purged_seq', 'purged_epoch', 'retained_from_at'])
      .where('id', '=', convo.id)
      .executeTakeFirstOrThrow()
    expect([row.purged_seq, row.purged_epoch]).toEqual([24, null])
    expect(row.retained_from_at.getTime()).toBeGreaterThan(Date.now() - 60_000)
    expect((await messages(bob, convo.id)).body.messages).toEqual([])
    expect((await messages(bob, convo.id, ids[23])).body.error).toBe('CursorTooOld')
    const sent = await t.seed.sendMessage(alice, convo.id)
    expect(sent.body.seq).toBe(25)
    // Nothing is due there any more: a pass reads no message of it.
    expect(await retentionPass()).toMatchObject({ messages: 0 })
  })

  it('keeps every message with MESSAGE_RETENTION_DAYS=0, and what is younger than the horizon', async () => {
    const { convo } = await convoWith(['message', 'message'])
    await age(convo.id, 2, 400)
    expect(await retentionPass({ MESSAGE_RETENTION_DAYS: 0 })).toMatchObject({ messages: 0 })
    expect(await retentionPass({ MESSAGE_RETENTION_DAYS: 500 })).toMatchObject({ messages: 0 })
    expect(await kept(convo.id)).toEqual([1, 2])
  })
})

describe('moderation retention', () => {
  it("deletes reports and the admins' log after MODERATION_RETENTION_DAYS, keeping the rest", async () => {
    const convo = await t.seed.createConvo(alice, [bob])
    const report = () =>
      t.call(bob, NSID.reportMember, {
        input: {
          convoId: convo.id,
          reportedDid: alice.did,
          category: 'spam',
          encryptedContent: bytesJson(new Uint8Array([1])),
        },
      })
    const old = (await report()).body.reportId
    const recent = (await report()).body.reportId
    await t.call(alice, NSID.promoteAdmin, { input: { convoId: convo.id, targetDid: bob.did } })
    await t.call(alice, NSID.updatePolicy, { input: { convoId: convo.id, maxMembers: 10 } })
    await sql`UPDATE member_report SET created_at = now() - interval '91 days' WHERE id = ${old}`.execute(t.ctx.db)
    await sql`UPDATE admin_action SET created_at = now() - interval '91 days'
              WHERE convo_id = ${convo.id} AND action = 'promote_admin'`.execute(t.ctx.db)
    expect(await retentionPass({ MODERATION_RETENTION_DAYS: 0 })).toMatchObject({ moderation: 0 })
    expect(await retentionPass()).toMatchObject({ moderation: 2 })
    const reports = await t.ctx.db.selectFrom('member_report').select('id').where('convo_id', '=', convo.id).execute()
    expect(reports.map((r) => r.id)).toEqual([recent])
    const log = await t.ctx.db.selectFrom('admin_action').select('action').where('convo_id', '=', convo.id).execute()
    expect(log.map((a) => a.action)).toEqual(['update_policy'])
  })
})

describe('device addition retention', () => {
  it('deletes additions settled longer ago than MODERATION_RETENTION_DAYS, keeping waiting ones', async () => {
    const convo = await t.seed.createConvo(alice, [bob])
    // Two new devices of bob's wait to be added; one is deleted (its addition cancelled).
    const [gone, waiting] = [await TestDevice.of(bob), await TestDevice.of(bob)]
    const ids: string[] = []
    for (const device of [gone, waiting]) {
      const res = await t.call(bob, NSID.registerDevice, { input: device.registration(await device.keyPackages(1)) })
      ids.push(res.body.deviceId)
    }
    expect((await t.call(bob, NSID.deleteDevice, { input: { deviceId: ids[0] as string } })).status).toBe(200)
    const additions = () =>
      t.ctx.db
        .selectFrom('pending_device_addition')
        .select(['device_id', 'status'])
        .where('convo_id', '=', convo.id)
        .orderBy('device_id')
        .execute()
    const before = await additions()
    expect(before.map((a) => a.status).sort()).toEqual(['cancelled', 'pending'])
    await sql`UPDATE pending_device_addition SET settled_at = now() - interval '91 days'
              WHERE convo_id = ${convo.id} AND settled_at IS NOT NULL`.execute(t.ctx.db)
    expect(await retentionPass({ MODERATION_RETENTION_DAYS: 0 })).toMatchObject({ moderation: 0 })
    expect(await retentionPass()).toMatchObject({ moderation: 1 })
    expect(await additions()).toEqual([{ device_id: ids[1], status: 'pending' }])
  })
})
