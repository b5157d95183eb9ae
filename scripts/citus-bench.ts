/**
 * `scripts/citus.sh bench`: what going distributed costs. The same
 * sendMessage load (no key, a random member of a random conversation)
 * through the server, in rounds taking turns, against the Citus cluster of
 * `scripts/citus.sh start` (delegated writes on) and against one PostgreSQL
 * of the same build and settings without Citus. Prints, for each: sends per
 * second, CPU per send of every database node summed and of the server
 * process, and sends per core-second (of the database nodes, and of them
 * with the server). The server's work includes its event hub's reads of new
 * events (on Citus, each a query of every shard). The machine's other work
 * shows in the rates, less in CPU per send.
 *
 *   BENCH_CLUSTER_URL   the cluster's database (the coordinator)
 *   BENCH_NODE_URLS     every node of the cluster, comma-separated: whose CPU is counted
 *   BENCH_SINGLE_URL    the one PostgreSQL (a database there is made for the run)
 *   BENCH_SECONDS, BENCH_ROUNDS (10, 2)
 */
import os from 'node:os'
import path from 'node:path'
import { mkdtemp, rm } from 'node:fs/promises'
import pg from 'pg'
import { TestUser } from '../test/helpers/index.js'
import { Tokens, Xrpc } from '../bench/client.js'
import { postgresCpu, type CpuMeter } from '../bench/cpu.js'
import { createBenchDatabase } from '../bench/database.js'
import { buildProduction, loadDist } from '../bench/dist.js'
import { httpLoad, measure, type Run } from '../bench/load.js'
import { median } from '../bench/rounds.js'
import { startBenchServer } from '../bench/server.js'
import { createConvos, Workload } from '../bench/workload.js'

const CONNECTIONS = 32
const USERS = 50
const CONVOS = 100
const MEMBERS = 4
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10)
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 2)

const required = (name: string): string => {
  const value = process.env[name]
  if (!value) throw new Error(`${name} is required (scripts/citus.sh bench sets it)`)
  return value
}

/** The CPU of every PostgreSQL instance named, summed: each one's postmaster and its backends. */
async function nodesCpu(urls: string[]): Promise<{ meter: CpuMeter; close: () => Promise<void> }> {
  const pools = urls.map((url) => new pg.Pool({ connectionString: url, max: 1 }))
  const meters = await Promise.all(pools.map((pool) => postgresCpu(pool)))
  if (meters.some((meter) => meter === undefined)) throw new Error('a database node does not run on this machine')
  return {
    meter: async () => (await Promise.all(meters.map((meter) => (meter as CpuMeter)()))).reduce((a, b) => a + b, 0),
    close: async () => {
      await Promise.all(pools.map((pool) => pool.end()))
    },
  }
}

const work = await mkdtemp(path.join(os.tmpdir(), 'catbird-citus-bench-'))
const stops: Array<() => Promise<unknown>> = []
try {
  console.log('building: npm run build')
  await buildProduction()
  const dist = await loadDist()
  const single = await createBenchDatabase(dist, required('BENCH_SINGLE_URL'), 'single')
  stops.push(single.drop)
  const singleCpu = await nodesCpu([required('BENCH_SINGLE_URL')])
  const clusterCpu = await nodesCpu(required('BENCH_NODE_URLS').split(','))
  stops.push(singleCpu.close, clusterCpu.close)
  const users = await Promise.all(Array.from({ length: USERS }, () => TestUser.create()))
  const tokens = new Tokens()
  const targets: Array<{ name: string; url: string; env: Record<string, string>; cpu: CpuMeter }> = [
    { name: 'one PostgreSQL', url: single.url, env: {}, cpu: singleCpu.meter },
    {
      name: 'Citus: coordinator and 2 workers, delegated writes',
      url: required('BENCH_CLUSTER_URL'),
      env: { DATABASE_DELEGATED_WRITES: 'true' },
      cpu: clusterCpu.meter,
    },
  ]
  const sides = []
  for (const target of targets) {
    const server = await startBenchServer({
      databaseUrl: target.url,
      logFile: path.join(work, `${sides.length}.log`),
      env: target.env,
    })
    stops.push(() => server.stop())
    console.log(`${target.name}: ${CONVOS} conversations of ${MEMBERS} among ${USERS} users`)
    const load = new Workload(new Xrpc(server.url, tokens), await createConvos(server.url, users, CONVOS, MEMBERS))
    await load.mintTokens()
    const run = () =>
      measure({ app: () => server.run('cpuMicros'), postgres: target.cpu }, () =>
        httpLoad({ url: server.url, connections: CONNECTIONS, seconds: SECONDS, next: () => load.sendMessage(false) }),
      )
    // Warm: plans cached, the cluster's functions made.
    await httpLoad({ url: server.url, connections: CONNECTIONS, seconds: 2, next: () => load.sendMessage(false) })
    sides.push({ ...target, run, runs: [] as Run[] })
  }
  for (let round = 1; round <= ROUNDS; round++) {
    for (const side of sides) {
      const run = await side.run()
      side.runs.push(run)
      console.log(
        `round ${round}, ${side.name}: ${run.rps.toFixed(0)} sends/s, CPU per send ${(run.cpu.postgres / 1000).toFixed(3)} ms database, ${(run.cpu.app / 1000).toFixed(3)} ms server, machine ${(run.machineBusy * 100).toFixed(0)}% busy`,
      )
    }
  }
  console.log(
    `\nsendMessage without key, ${ROUNDS} rounds of ${SECONDS} s each, ${CONNECTIONS} connections; medians:\n`,
  )
  console.log(
    '| database | sends/s | CPU ms per send: database (every node) | server | sends per core-second: database | database and server |',
  )
  console.log('|---|---|---|---|---|---|')
  for (const side of sides) {
    const database = median(side.runs.map((run) => run.cpu.postgres)) / 1000
    const server = median(side.runs.map((run) => run.cpu.app)) / 1000
    const rps = median(side.runs.map((run) => run.rps))
    const perCoreSecond = (ms: number) => (1000 / ms).toFixed(0)
    console.log(
      `| ${side.name} | ${rps.toFixed(0)} | ${database.toFixed(3)} | ${server.toFixed(3)} | ${perCoreSecond(database)} | ${perCoreSecond(database + server)} |`,
    )
  }
  console.log(
    `\n${os.cpus().length} cores (${os.cpus()[0]?.model ?? 'unknown CPU'}), load average ${os.loadavg()[0]?.toFixed(1)}`,
  )
} finally {
  for (const stop of stops.reverse()) await stop().catch((err: unknown) => console.error('stopping:', err))
  await rm(work, { recursive: true, force: true })
}
