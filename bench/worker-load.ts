import type pg from 'pg'
import { httpLoad, measure, type Run } from './load.js'
import { atMost, fixed, runsTable, type Section, type Target } from './report.js'
import { ratioOf } from './rounds.js'
import type { ServerCommands } from './server.js'
import { CONNECTIONS, log, type Bench } from './setup.js'

/** Longest one pass may take before the bench gives up on it. */
const PASS_LIMIT_SECONDS = 300

/** A background worker measured under load, and the backlog it works off. */
export interface WorkerUnderLoad {
  /** What the section is called, and what its worker is called in it. */
  title: string
  worker: string
  /** The targets table's measure of the p99 ratio. */
  measure: string
  /** The server command running one pass; it answers how many rows the pass deleted. */
  pass: keyof Pick<ServerCommands, 'cleanupPass' | 'retentionPass'>
  /** Loads the backlog (after the warm-up); describes it for the section. */
  loadBacklog(pool: pg.Pool): Promise<string>
  /** Whether any of the backlog is left. */
  backlogLeft(pool: pg.Pool): Promise<boolean>
  /** What autovacuum would do after each pair of slices. */
  vacuum: string
  /** The targets and words the section ends with, once the backlog is gone. */
  after(pool: pg.Pool): Promise<{ targets: Target[]; words: string }>
}

/**
 * sendMessage with fresh keys while a worker deletes a backlog: a slice of
 * load while one pass of the worker runs, a slice as long without one (the
 * worker pauses between passes), and so on until the backlog is gone. The
 * kinds of slice alternate every few seconds (A B, B A, ...), so the
 * machine's drift falls on both alike.
 */
export async function workerUnderLoad(bench: Bench, spec: WorkerUnderLoad): Promise<Section> {
  log(spec.title.toLowerCase())
  const { load, server, pool } = bench.small
  const { rounds } = bench.settings
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
  const backlog = await spec.loadBacklog(pool)
  /** One run per slice: while a pass of the worker ran, and as long without (pairs in order). */
  const during: Run[] = []
  const between: Run[] = []
  let deleted = 0
  let sliceSeconds = rounds.seconds
  const withPass = async () => {
    const pass = server.run(spec.pass)
    const run = await measure(meters, keyed(PASS_LIMIT_SECONDS, pass))
    deleted += await pass
    during.push(run)
    sliceSeconds = run.seconds
  }
  const withoutPass = async () => {
    between.push(await measure(meters, keyed(sliceSeconds)))
  }
  while (await spec.backlogLeft(pool)) {
    if (during.length % 2 === 0) {
      await withPass()
      await withoutPass()
    } else {
      await withoutPass()
      await withPass()
    }
    await pool.query(spec.vacuum)
    const [pass, without] = [during.at(-1) as Run, between.at(-1) as Run]
    log(
      `  pass ${during.length}: ${pass.seconds.toFixed(1)} s, p99 ${pass.p99.toFixed(2)} ms during the pass, ` +
        `${without.p99.toFixed(2)} ms without`,
    )
  }
  const { targets, words } = await spec.after(pool)
  return {
    targets: [atMost(spec.measure, ratioOf(during, between, 'p99'), 1.25), ...targets],
    markdown: [
      `### ${spec.title}`,
      '',
      `${backlog}; then, under sendMessage with fresh keys (${CONNECTIONS} connections), slices while one pass of the ${spec.worker} runs ` +
        `(up to 100 statements deleting 1,000 rows each, with the worker's pause between them) alternate with equally long slices without a pass ` +
        `(A B, B A, ...; \`VACUUM\` after each pair, outside the slices) until the backlog is gone: ${during.length} passes, ` +
        `${fixed(
          during.reduce((sum, r) => sum + r.seconds, 0),
          1,
        )} s, ${deleted} rows deleted. ${words} ` +
        'Figures are medians over slices; the target ratio is the median of the per-pair ratios.',
      '',
      runsTable([
        [`sendMessage with key, while ${spec.worker} passes ran`, during],
        [`sendMessage with key, between passes`, between],
      ]),
      '',
    ],
  }
}
