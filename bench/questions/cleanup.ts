import { count, insertExpiredIdempotencyKeys } from '../data.js'
import { checkpoint } from '../database.js'
import { atMost, millions, type Section } from '../report.js'
import type { Bench } from '../setup.js'
import { workerUnderLoad } from '../worker-load.js'

/** The idempotency cleanup worker deleting a backlog of expired records, under sendMessage with keys. */
export function cleanupUnderLoad(bench: Bench): Promise<Section> {
  const { expiredKeys: backlog } = bench.settings
  return workerUnderLoad(bench, {
    title: 'Idempotency cleanup under load',
    worker: 'cleanup worker',
    measure: '7. sendMessage p99 during cleanup / without cleanup',
    pass: 'cleanupPass',
    async loadBacklog(pool) {
      await insertExpiredIdempotencyKeys(pool, backlog, 'cleanup')
      await checkpoint(pool)
      return `${millions(backlog)} expired records bulk-loaded`
    },
    backlogLeft: async (pool) =>
      (await count(
        pool,
        'SELECT count(*) AS n FROM (SELECT FROM idempotency_key WHERE expires_at <= now() LIMIT 1) AS expired',
      )) > 0,
    vacuum: 'VACUUM idempotency_key',
    async after(pool) {
      const expiredLeft = await count(pool, 'SELECT count(*) AS n FROM idempotency_key WHERE expires_at <= now()')
      const liveLeft = await count(pool, 'SELECT count(*) AS n FROM idempotency_key WHERE expires_at > now()')
      return {
        targets: [atMost('7. expired idempotency records left after cleanup', expiredLeft, 0, 0)],
        words: `Afterwards: ${expiredLeft} expired records left; ${liveLeft} live ones (written by the load, not yet expired).`,
      }
    },
  })
}
