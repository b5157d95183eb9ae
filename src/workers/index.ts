import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyBaseLogger } from 'fastify'
import type { AppContext } from '../context.js'
import { deleteExpiredIdempotencyKeys } from '../idempotency/claim.js'
import { sweepTickets } from '../services/tickets.js'
import { sweepWelcomes } from '../services/welcomes.js'
import { startWorker, type RunningWorker } from './worker.js'

/** Most batches one pass runs, so a huge backlog is worked off over several passes. */
const MAX_BATCHES_PER_PASS = 100

/**
 * Runs `batch` (a delete of at most one batch, answering how many rows it
 * deleted) until one deletes nothing, with a pause between; answers the total.
 * Not "fewer than a batch": an instance sweeping at once may have taken part
 * of this one (on Citus, where each shard's part is deleted apart, both then
 * delete part of it).
 */
async function inBatches(pauseMs: number, batch: () => Promise<number>): Promise<number> {
  let deleted = 0
  for (let n = 0; n < MAX_BATCHES_PER_PASS; n++) {
    const done = await batch()
    deleted += done
    if (done === 0) break
    await sleep(pauseMs)
  }
  return deleted
}

export function startIdempotencyCleanup(ctx: AppContext, log: FastifyBaseLogger): RunningWorker {
  const { config, db, metrics } = ctx
  log.info(
    { intervalSeconds: config.WORKER_INTERVAL_SECONDS, batchSize: config.WORKER_BATCH_SIZE },
    'Idempotency cache cleanup worker started',
  )
  return startWorker(
    {
      name: 'idempotency-cleanup',
      intervalMs: config.WORKER_INTERVAL_SECONDS * 1000,
      run: async () => ({
        deleted: await inBatches(config.WORKER_BATCH_PAUSE_MS, async () => {
          const n = await deleteExpiredIdempotencyKeys(db, config.WORKER_BATCH_SIZE)
          metrics.idempotencyCleanupDeleted.inc(n)
          return n
        }),
      }),
    },
    { log, metrics },
  )
}

export function startWelcomeSweep(ctx: AppContext, log: FastifyBaseLogger): RunningWorker {
  const { config, db, metrics } = ctx
  log.info({ intervalSeconds: config.WORKER_INTERVAL_SECONDS }, 'Welcome sweep worker started')
  return startWorker(
    {
      name: 'welcome-sweep',
      intervalMs: config.WORKER_INTERVAL_SECONDS * 1000,
      run: async () => {
        const result = await sweepWelcomes(db, {
          graceSeconds: config.WELCOME_GRACE_SECONDS,
          retentionDays: config.WELCOME_RETENTION_DAYS,
          batchSize: config.WORKER_BATCH_SIZE,
        })
        metrics.welcome.inc({ event: 'claim_lapsed' }, result.lapsed)
        metrics.welcome.inc({ event: 'expired' }, result.expired)
        return { ...result }
      },
    },
    { log, metrics },
  )
}

/** Deletes subscription tickets used or expired a while ago. */
export function startTicketSweep(ctx: AppContext, log: FastifyBaseLogger): RunningWorker {
  const { config, db, metrics } = ctx
  return startWorker(
    {
      name: 'ticket-sweep',
      intervalMs: config.WORKER_INTERVAL_SECONDS * 1000,
      run: async () => ({
        deleted: await inBatches(config.WORKER_BATCH_PAUSE_MS, () => sweepTickets(db, config.WORKER_BATCH_SIZE)),
      }),
    },
    { log, metrics },
  )
}

export function startWorkers(ctx: AppContext, log: FastifyBaseLogger): RunningWorker[] {
  return [startIdempotencyCleanup(ctx, log), startWelcomeSweep(ctx, log), startTicketSweep(ctx, log)]
}
