import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyBaseLogger } from 'fastify'
import type { AppContext } from '../context.js'
import { deleteExpiredIdempotencyKeys } from '../idempotency/claim.js'
import { sweepTickets } from '../services/tickets.js'
import { sweepWelcomes } from '../services/welcomes.js'
import { startWorker, type RunningWorker } from './worker.js'

/** Most batches one pass runs, so a huge backlog is worked off over several passes. */
const MAX_BATCHES_PER_PASS = 100

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
      run: async () => {
        let deleted = 0
        for (let batch = 0; batch < MAX_BATCHES_PER_PASS; batch++) {
          const n = await deleteExpiredIdempotencyKeys(db, config.WORKER_BATCH_SIZE)
          deleted += n
          metrics.idempotencyCleanupDeleted.inc(n)
          // Not "fewer than a batch": an instance sweeping at once may have taken part of this one
          // (on Citus, where each shard's part is deleted apart, both then delete part of it).
          if (n === 0) break
          await sleep(config.WORKER_BATCH_PAUSE_MS)
        }
        return { deleted }
      },
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
function startTicketSweep(ctx: AppContext, log: FastifyBaseLogger): RunningWorker {
  const { config, db, metrics } = ctx
  return startWorker(
    {
      name: 'ticket-sweep',
      intervalMs: config.WORKER_INTERVAL_SECONDS * 1000,
      run: async () => {
        let deleted = 0
        for (let batch = 0; batch < MAX_BATCHES_PER_PASS; batch++) {
          const n = await sweepTickets(db, config.WORKER_BATCH_SIZE)
          deleted += n
          if (n < config.WORKER_BATCH_SIZE) break
          await sleep(config.WORKER_BATCH_PAUSE_MS)
        }
        return { deleted }
      },
    },
    { log, metrics },
  )
}

export function startWorkers(ctx: AppContext, log: FastifyBaseLogger): RunningWorker[] {
  return [startIdempotencyCleanup(ctx, log), startWelcomeSweep(ctx, log), startTicketSweep(ctx, log)]
}
