import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyBaseLogger } from 'fastify'
import type { AppContext } from '../context.js'
import { deleteExpiredIdempotencyKeys } from '../idempotency/claim.js'
import { conversationsDue, purgeOldMessages, purgeOldModeration } from '../services/retention.js'
import { sweepTickets } from '../services/tickets.js'
import { sweepWelcomes } from '../services/welcomes.js'
import { PushWorker, type PushSetup } from './push.js'
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

const DAY_MS = 24 * 3600 * 1000
/** Conversations looked up at once for their old messages. */
const DUE_PAGE = 100

/**
 * Deletes what is past its horizon: messages (MESSAGE_RETENTION_DAYS), one
 * conversation's oldest batch per statement, the conversations that waited
 * longest first; then reports and the admins' log
 * (MODERATION_RETENTION_DAYS). Like the idempotency cleanup: bounded
 * statements, a pause between them, at most MAX_BATCHES_PER_PASS of each per
 * pass; a backlog is worked off over several passes.
 */
export function startRetention(ctx: AppContext, log: FastifyBaseLogger): RunningWorker {
  const { config, db, metrics } = ctx
  const days = { messages: config.MESSAGE_RETENTION_DAYS, moderation: config.MODERATION_RETENTION_DAYS }
  log.info({ intervalSeconds: config.WORKER_INTERVAL_SECONDS, days }, 'Retention worker started')
  const pause = () => sleep(config.WORKER_BATCH_PAUSE_MS)
  const purgeMessages = async (horizon: Date) => {
    let deleted = 0
    let batches = 0
    // A conversation looked at once per pass: one left due by a message kept behind a younger one waits for the next.
    const seen = new Set<string>()
    const batch = async (convoId: string) => {
      const purged = await purgeOldMessages(db, { convoId, horizon, limit: config.WORKER_BATCH_SIZE })
      batches++
      deleted += purged.deleted
      metrics.retentionDeleted.inc({ kind: 'message' }, purged.deleted)
      await pause()
      return purged.more
    }
    while (batches < MAX_BATCHES_PER_PASS) {
      const due = (await conversationsDue(db, horizon, DUE_PAGE)).filter((id) => !seen.has(id))
      if (due.length === 0) break
      for (const convoId of due) {
        seen.add(convoId)
        // Its whole backlog, a batch at a time, before the next conversation's.
        while (batches < MAX_BATCHES_PER_PASS && (await batch(convoId)));
        if (batches >= MAX_BATCHES_PER_PASS) break
      }
    }
    return deleted
  }
  const purgeModeration = (horizon: Date) =>
    inBatches(config.WORKER_BATCH_PAUSE_MS, async () => {
      const n = await purgeOldModeration(db, { horizon, limit: config.WORKER_BATCH_SIZE })
      metrics.retentionDeleted.inc({ kind: 'moderation' }, n)
      return n
    })
  return startWorker(
    {
      name: 'retention',
      intervalMs: config.WORKER_INTERVAL_SECONDS * 1000,
      run: async () => {
        const now = Date.now()
        return {
          messages: days.messages > 0 ? await purgeMessages(new Date(now - days.messages * DAY_MS)) : 0,
          moderation: days.moderation > 0 ? await purgeModeration(new Date(now - days.moderation * DAY_MS)) : 0,
        }
      },
    },
    { log, metrics },
  )
}

/** The background workers; the push worker when push is on (`push`: see pushSetup). */
export function startWorkers(ctx: AppContext, log: FastifyBaseLogger, push?: PushSetup): RunningWorker[] {
  return [
    startIdempotencyCleanup(ctx, log),
    startWelcomeSweep(ctx, log),
    startTicketSweep(ctx, log),
    startRetention(ctx, log),
    ...(push ? [new PushWorker(ctx, log, push).start()] : []),
  ]
}
