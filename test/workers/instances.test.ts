import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startIdempotencyCleanup, startWelcomeSweep } from '../../src/workers/index.js'
import { countRows, startTestApp, type TestApp } from '../helpers/index.js'

// Two server instances on one database, as in a scaled-out deployment.
let one: TestApp
let two: TestApp

beforeAll(async () => {
  one = await startTestApp({ config: { WORKER_BATCH_SIZE: '500' } })
  two = await startTestApp({ testDb: one.testDb, config: { WORKER_BATCH_SIZE: '500' } })
})
afterAll(async () => {
  await two?.close()
  await one?.close()
})

const deleted = async (app: TestApp) =>
  Number((await app.ctx.metrics.idempotencyCleanupDeleted.get()).values[0]?.value ?? 0)

describe('workers on several instances', () => {
  it('idempotency cleanup on two instances at once deletes every expired row exactly once', async () => {
    await sql`
      INSERT INTO idempotency_key (shard_key, scope_hash, caller_did, nsid, fingerprint, status, response, expires_at)
      SELECT 'c' || (i % 100), sha256(('k' || i)::bytea), 'did:example:x', 'n', '\\x00', 200, '{}',
             now() - interval '1 minute' + CASE WHEN i % 10 = 0 THEN interval '1 day' ELSE interval '0' END
      FROM generate_series(1, 6000) AS i`.execute(one.ctx.db)
    const workers = [startIdempotencyCleanup(one.ctx, one.app.log), startIdempotencyCleanup(two.ctx, two.app.log)]
    await Promise.all(workers.map((w) => w.runOnce()))
    await Promise.all(workers.map((w) => w.stop()))
    expect(await countRows(one.ctx.db, 'idempotency_key')).toBe(600)
    expect((await deleted(one)) + (await deleted(two))).toBe(5400)
  })

  it('the Welcome sweep on two instances lapses each claim once', async () => {
    await sql`INSERT INTO convo (id, group_id, creator_did, cipher_suite) VALUES ('c1', 'ab', 'did:example:a', 's')`.execute(
      one.ctx.db,
    )
    await sql`INSERT INTO welcome (convo_id, data) VALUES ('c1', '\\x01')`.execute(one.ctx.db)
    await sql`
      INSERT INTO welcome_delivery (convo_id, recipient_did, welcome_id, state, fetched_at, expires_at)
      SELECT 'c1', 'did:example:r' || i, (SELECT id FROM welcome LIMIT 1), 'in_flight',
             now() - interval '1 hour', now() + interval '1 day'
      FROM generate_series(1, 1200) AS i`.execute(one.ctx.db)
    const workers = [startWelcomeSweep(one.ctx, one.app.log), startWelcomeSweep(two.ctx, two.app.log)]
    await Promise.all(workers.map((w) => w.runOnce()))
    await Promise.all(workers.map((w) => w.stop()))
    const lapsed = async (app: TestApp) =>
      (await app.ctx.metrics.welcome.get()).values.find((v) => v.labels.event === 'claim_lapsed')?.value ?? 0
    const inFlight = await countRows(one.ctx.db, 'welcome_delivery', sql`state = 'in_flight'`)
    // Each claim is lapsed once (counted by one instance), and each pass handles
    // one bounded batch: 500 per instance here. Two instances that pick the same
    // batch at once (no row locks: see sweepWelcomes) share it.
    const total = (await lapsed(one)) + (await lapsed(two))
    expect(total + inFlight).toBe(1200)
    expect(total).toBeGreaterThanOrEqual(500)
    expect(total).toBeLessThanOrEqual(1000)
  })
})
