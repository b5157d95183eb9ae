import { AsyncLocalStorage } from 'node:async_hooks'
import { memoryAfterGc, thisProcessCpu } from './cpu.js'
import { loadDist } from './dist.js'
import { answerCommands } from './ipc.js'
import { observeQueries } from './queries.js'

/**
 * The server process of the bench (see server.ts): the production build, as
 * src/main.ts assembles it, plus counts of database round trips and a way
 * to run the idempotency cleanup and the retention worker on demand. Migrations are the bench's job.
 */
const dist = await loadDist()
const config = dist.loadConfig()
if (!config.DATABASE_URL) throw new Error('DATABASE_URL is required')
// Delegated writes as configured: scripts/citus.sh bench runs the server on a Citus cluster.
const database = dist.createDatabase({
  url: config.DATABASE_URL,
  poolSize: config.DATABASE_POOL_SIZE,
  delegatedWrites: config.DATABASE_DELEGATED_WRITES,
})
// A statement counts for the request in whose async context it was sent;
// the rest (event fan-out reading new messages, workers) is background.
// Counting is on only while round trips are counted, never in a timed run:
// an active AsyncLocalStorage turns on async hooks, a cost on every promise
// and timer that the server does not have in production (nor the bare peer).
const inRequest = new AsyncLocalStorage<{ inTransaction: boolean }>()
let counting = false
const queries = { request: 0, background: 0, transactions: 0, inTransaction: 0 }
observeQueries(database.pool, (query) => {
  if (!counting) return
  const request = inRequest.getStore()
  if (!request) {
    queries.background++
    return
  }
  queries.request++
  // A string that begins a transaction, the strings after it, and the one that ends it.
  if (/^\s*begin\b/i.test(query.text)) {
    queries.transactions++
    request.inTransaction = true
  }
  if (request.inTransaction) queries.inTransaction++
  if (/\b(commit|rollback)\b;?\s*$/i.test(query.text)) request.inTransaction = false
})
const { app, ctx } = await dist.buildServer({ config, database })
app.addHook('onRequest', (_request, _reply, done) =>
  counting ? inRequest.run({ inTransaction: false }, done) : done(),
)
const cleanup = dist.startIdempotencyCleanup(ctx, app.log)
// With APNs configured, pushes go out as in production: from this process's worker.
const pushSetup = dist.pushSetup(config)
const pushWorker = pushSetup && new dist.PushWorker(ctx, app.log, pushSetup).start()
const retention = dist.startRetention(ctx, app.log)

const deletedSoFar = async () => (await ctx.metrics.idempotencyCleanupDeleted.get()).values[0]?.value ?? 0
const messagesDeletedSoFar = async () =>
  (await ctx.metrics.retentionDeleted.get()).values.find((v) => v.labels.kind === 'message')?.value ?? 0

answerCommands(
  {
    queries: async () => ({ ...queries }),
    startQueryCount: async () => {
      counting = true
      return null
    },
    endQueryCount: async () => {
      counting = false
      inRequest.disable()
      return null
    },
    cpuMicros: thisProcessCpu,
    memory: memoryAfterGc,
    cleanupPass: async () => {
      const before = await deletedSoFar()
      await cleanup.runOnce()
      return (await deletedSoFar()) - before
    },
    retentionPass: async () => {
      const before = await messagesDeletedSoFar()
      await retention.runOnce()
      return (await messagesDeletedSoFar()) - before
    },
    stop: async () => {
      await app.close()
      await cleanup.stop()
      await pushWorker?.stop()
      await retention.stop()
      await database.close()
      return null
    },
  },
  await app.listen({ host: '127.0.0.1', port: 0 }),
)
