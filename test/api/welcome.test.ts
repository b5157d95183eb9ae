import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { encodeBase64, NSID, startTestApp, type TestApp, TestUser, welcomeOf } from '../helpers/index.js'
import { startWelcomeSweep } from '../../src/workers/index.js'

let t: TestApp
let alice: TestUser

beforeAll(async () => {
  t = await startTestApp({ config: { WELCOME_GRACE_SECONDS: '300' } })
  alice = await TestUser.create()
})
afterAll(async () => {
  await t?.close()
})

/** A conversation created by alice with `bob` invited, and the Welcome (base64). */
async function invite() {
  const bob = await TestUser.create()
  const convo = await t.seed.createConvo(alice, [bob])
  return { bob, convo, welcome: encodeBase64(welcomeOf(convo.id)) }
}

const getWelcome = (user: TestUser, convoId: string) => t.call(user, NSID.getWelcome, { params: { convoId } })
const confirm = (user: TestUser, convoId: string, success: boolean, errorDetails?: string) =>
  t.call(user, NSID.confirmWelcome, {
    input: { convoId, success, ...(errorDetails ? { errorDetails } : {}) },
  })

async function delivery(convoId: string, did: string) {
  return t.ctx.db
    .selectFrom('welcome_delivery')
    .selectAll()
    .where('convo_id', '=', convoId)
    .where('recipient_did', '=', did)
    .executeTakeFirst()
}

/**
 * Moves the fetch time into the past instead of sleeping through the grace
 * period. The new time is a value, not an expression of the column: Citus
 * refuses a STABLE function (timestamp arithmetic) over a column in an UPDATE.
 */
async function ageFetch(convoId: string, did: string, seconds: number) {
  const fetchedAt = (await delivery(convoId, did))?.fetched_at
  if (!fetchedAt) throw new Error('the Welcome was never fetched')
  await t.ctx.db
    .updateTable('welcome_delivery')
    .set({ fetched_at: new Date(fetchedAt.getTime() - seconds * 1000) })
    .where('convo_id', '=', convoId)
    .where('recipient_did', '=', did)
    .execute()
}

describe('two-phase Welcome delivery', () => {
  it('available -> in_flight on fetch; re-fetch within grace returns the same Welcome without extending grace', async () => {
    const { bob, convo, welcome } = await invite()
    const first = await getWelcome(bob, convo.id)
    expect(first).toMatchObject({ status: 200, body: { convoId: convo.id, welcome } })
    const afterFirst = await delivery(convo.id, bob.did)
    expect(afterFirst?.state).toBe('in_flight')
    const again = await getWelcome(bob, convo.id)
    expect(again.body.welcome).toBe(welcome)
    const afterAgain = await delivery(convo.id, bob.did)
    expect(afterAgain?.fetched_at).toEqual(afterFirst?.fetched_at)
    expect(afterAgain?.fetch_count).toBe(2)
  })

  it('in_flight -> consumed on success; then 410 WelcomeAlreadyConsumed; confirming again is harmless', async () => {
    const { bob, convo } = await invite()
    await getWelcome(bob, convo.id)
    expect((await confirm(bob, convo.id, true)).body).toEqual({ confirmed: true })
    expect((await delivery(convo.id, bob.did))?.state).toBe('consumed')
    const gone = await getWelcome(bob, convo.id)
    expect(gone.status).toBe(410)
    expect(gone.body).toMatchObject({ error: 'WelcomeAlreadyConsumed', message: expect.any(String) })
    expect((await confirm(bob, convo.id, true)).body).toEqual({ confirmed: true })
    // A failure reported after success is not accepted, and changes nothing.
    expect((await confirm(bob, convo.id, false, 'late')).body).toEqual({ confirmed: false })
    expect((await delivery(convo.id, bob.did))?.state).toBe('consumed')
  })

  it('in_flight -> available on failure, recording the error; the client can fetch and retry', async () => {
    const { bob, convo, welcome } = await invite()
    await getWelcome(bob, convo.id)
    expect((await confirm(bob, convo.id, false, 'bad tree hash')).body).toEqual({ confirmed: true })
    const row = await delivery(convo.id, bob.did)
    expect(row).toMatchObject({ state: 'available', failure_count: 1, last_error: 'bad tree hash' })
    expect((await getWelcome(bob, convo.id)).body.welcome).toBe(welcome)
    expect((await confirm(bob, convo.id, true)).status).toBe(200)
    expect((await delivery(convo.id, bob.did))?.state).toBe('consumed')
  })

  it('a lapsed claim is fetchable again with a fresh grace period', async () => {
    const { bob, convo, welcome } = await invite()
    await getWelcome(bob, convo.id)
    await ageFetch(convo.id, bob.did, 301)
    const before = await delivery(convo.id, bob.did)
    const refetch = await getWelcome(bob, convo.id)
    expect(refetch.body.welcome).toBe(welcome)
    const after = await delivery(convo.id, bob.did)
    expect(after?.state).toBe('in_flight')
    expect(after!.fetched_at!.getTime()).toBeGreaterThan(before!.fetched_at!.getTime())
  })

  it('the sweep lapses expired claims and deletes Welcomes past retention', async () => {
    const lapsed = await invite()
    await getWelcome(lapsed.bob, lapsed.convo.id)
    await ageFetch(lapsed.convo.id, lapsed.bob.did, 301)
    const old = await invite()
    await sql`UPDATE welcome_delivery SET expires_at = now() - interval '1 second'
              WHERE convo_id = ${old.convo.id}`.execute(t.ctx.db)

    const worker = startWelcomeSweep(t.ctx, t.app.log)
    await worker.runOnce()
    await worker.stop()

    expect((await delivery(lapsed.convo.id, lapsed.bob.did))?.state).toBe('available')
    expect(await delivery(old.convo.id, old.bob.did)).toBeUndefined()
    const expired = await getWelcome(old.bob, old.convo.id)
    expect(expired.status).toBe(404)
    expect(expired.body.error).toBe('WelcomeNotFound')
  })

  it('a recipient that never confirms is settled by its first message', async () => {
    const { bob, convo } = await invite()
    await getWelcome(bob, convo.id)
    expect((await t.seed.sendMessage(bob, convo.id)).status).toBe(200)
    expect(await delivery(convo.id, bob.did)).toMatchObject({ state: 'consumed', consumed_via: 'message' })
    expect((await getWelcome(bob, convo.id)).status).toBe(410)
  })

  it('confirming a Welcome never fetched is a 400; no Welcome is a 404', async () => {
    const { bob, convo } = await invite()
    const early = await confirm(bob, convo.id, true)
    expect(early.status).toBe(400)
    expect(early.body.error).toBe('WelcomeNotFetched')
    expect((await delivery(convo.id, bob.did))?.state).toBe('available')
    const none = await confirm(alice, convo.id, true)
    expect(none.status).toBe(404)
    expect(none.body.error).toBe('WelcomeNotFound')
  })

  it("hides another recipient's Welcome: 404 for fetch and confirm, nothing changes", async () => {
    const { bob, convo } = await invite()
    const eve = await TestUser.create()
    const fetchByEve = await getWelcome(eve, convo.id)
    expect(fetchByEve.status).toBe(404)
    await getWelcome(bob, convo.id)
    expect((await confirm(eve, convo.id, true)).status).toBe(404)
    expect((await delivery(convo.id, bob.did))?.state).toBe('in_flight')
  })

  it('two concurrent fetches of an available Welcome both succeed with one transition', async () => {
    const { bob, convo, welcome } = await invite()
    const both = await Promise.all([getWelcome(bob, convo.id), getWelcome(bob, convo.id)])
    expect(both.map((r) => r.body.welcome)).toEqual([welcome, welcome])
    const row = await delivery(convo.id, bob.did)
    expect(row).toMatchObject({ state: 'in_flight', fetch_count: 2 })
  })

  it('concurrent success and failure confirmations end in one consistent state', async () => {
    for (let i = 0; i < 5; i++) {
      const { bob, convo } = await invite()
      await getWelcome(bob, convo.id)
      const [ok, failed] = await Promise.all([confirm(bob, convo.id, true), confirm(bob, convo.id, false, 'x')])
      // Either order ends consumed: success wins over an earlier failure, and a
      // failure after success is refused. The failure counts only if accepted.
      const row = await delivery(convo.id, bob.did)
      expect(row?.state).toBe('consumed')
      expect(ok.body.confirmed).toBe(true)
      expect(row?.failure_count).toBe(failed.body.confirmed ? 1 : 0)
    }
  })
})
