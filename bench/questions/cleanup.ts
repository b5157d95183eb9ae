import { count, insertExpiredIdempotencyKeys } from '../data.js'
import { checkpoint } from '../database.js'
import { httpLoad, measure, type Run } from '../load.js'
import { atMost, fixed, millions, runsTable, type Section } from '../report.js'
import { ratioOf } from '../rounds.js'
import { CONNECTIONS, log, type Bench } from '../setup.js'

/** Longest a cleanup run may take before the bench gives up on it. */
const CLEANUP_LIMIT_SECONDS = 300

/**
 * sendMessage with fresh keys while the cleanup worker deletes a backlog of
 * expired records: a slice of load while one pass of the worker runs, a
 * slice as long without one (the worker pauses between passes), and so on
 * until the backlog is gone. The kinds of slice alternate every few seconds
 * (A B, B A, ...), so the machine's drift falls on both alike.
 */
export async function cleanupUnderLoad(bench: Bench): Promise<Section> {
  log('idempotency cleanup under load')
  const { load, server, pool } = bench.small
  const { rounds, expiredKeys: backlog } = bench.settings
  const meters = bench.meters(server)
  const keyed = (seconds: number, until?: Promise<unknown>) => () =>
    httpLoad({
      url: server.url,
      connections: CONNECTIONS,
      seconds,
      next: () => load.sendMessage(true),
      ...(until ? { until } : {}),
    })
  await measure(meters, keyed(rounds.warmupSeconds))
  await insertExpiredIdempotencyKeys(pool, backlog, 'cleanup')
  await checkpoint(pool)
  const backlogLeft = () =>
    count(pool, 'SELECT count(*) AS n FROM (SELECT FROM idempotency_key WHERE expires_at <= now() LIMIT 1) AS expired')
  /** One run per slice: while a pass of the worker ran, and as long without (pairs in order). */
  const during: Run[] = []
  const between: Run[] = []
  let deleted = 0
  let sliceSeconds = rounds.seconds
  const withPass = async () => {
    const pass = server.run('cleanupPass')
    const run = await measure(meters, keyed(CLEANUP_LIMIT_SECONDS, pass))
    deleted += await pass
    during.push(run)
    sliceSeconds = run.seconds
  }
  const withoutPass = async () => {
    between.push(await measure(meters, keyed(sliceSeconds)))
  }
  while (await backlogLeft()) {
    if (during.length % 2 === 0) {
      await withPass()
      await withoutPass()
    } else {
      await withoutPass()
      await withPass()
    }
    // What autovacuum would do at a moment of its choosing, done outside the slices.
    await pool.query('VACUUM idempotency_key')
    const [pass, without] = [during.at(-1) as Run, between.at(-1) as Run]
    log(
      `  pass ${during.length}: ${pass.seconds.toFixed(1)} s, p99 ${pass.p99.toFixed(2)} ms during the pass, ` +
        `${without.p99.toFixed(2)} ms without`,
    )
  }
  const expiredLeft = await count(pool, 'SELECT count(*) AS n FROM idempotency_key WHERE expires_at <= now()')
  const liveLeft = await count(pool, 'SELECT count(*) AS n FROM idempotency_key WHERE expires_at > now()')
  return {
    targets: [
      atMost('7. sendMessage p99 during cleanup / without cleanup', ratioOf(during, between, 'p99'), 1.25),
      atMost('7. expired idempotency records left after cleanup', expiredLeft, 0, 0),
    ],
    markdown: [
      '### Idempotency cleanup under load',
      '',
      `${millions(backlog)} expired records bulk-loaded; then, under sendMessage with fresh keys (${CONNECTIONS} connections), slices while one pass of the cleanup worker runs ` +
        `(up to 100 statements deleting 1,000 records each, with the worker's pause between them) alternate with equally long slices without a pass ` +
        `(A B, B A, ...; \`VACUUM\` after each pair, outside the slices) until the backlog is gone: ${during.length} passes, ` +
        `${fixed(
          during.reduce((sum, r) => sum + r.seconds, 0),
          1,
        )} s, ${deleted} records deleted. ` +
        `Afterwards: ${expiredLeft} expired records left; ${liveLeft} live ones (written by the load, not yet expired). ` +
        'Figures are medians over slices; the target ratio is the median of the per-pair ratios.',
      '',
      runsTable([
        ['sendMessage with key, while cleanup passes ran', during],
        ['sendMessage with key, between passes', between],
      ]),
      '',
    ],
  }
}
