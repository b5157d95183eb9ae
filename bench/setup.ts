import { execFileSync } from 'node:child_process'
import { chmod, mkdir, mkdtemp, rm } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { SUITE, TestUser } from '../test/helpers/index.js'
import { Tokens, Xrpc, type HttpRequest } from './client.js'
import { postgresCpu, thisProcessCpu, type CpuMeter } from './cpu.js'
import { addBackgroundConvos, fillMessages } from './data.js'
import { checkpoint, createBenchDatabase, startCluster, type BenchDatabase } from './database.js'
import { buildProduction, loadDist, type Dist } from './dist.js'
import { httpLoad, measure, type CpuMeters, type HttpLoad } from './load.js'
import type { Environment } from './report.js'
import type { Variant } from './rounds.js'
import { startBenchServer, type BenchServer, type BenchServerOptions } from './server.js'
import { createConvos, PAGE, Workload } from './workload.js'

export const CONNECTIONS = 32
const MEMBERS_PER_CONVO = 4

const QUICK = {
  rounds: { rounds: 3, seconds: 1, warmupSeconds: 1 },
  users: 100,
  convos: 200,
  /** Messages every conversation starts with: more than a page. */
  seedMessages: PAGE + 10,
  largeConvos: 500,
  messagesPerLargeConvo: 1_000,
  replayKeys: 2_000,
  keyPackages: 1_000,
  keyPackageRounds: 2,
  /** Key packages per run of the comparison of single and batch publishing. */
  keyPackageBatch: 400,
  expiredKeys: 50_000,
  oldMessages: { convos: 100, perConvo: 500 },
  fanout: { streams: 100, messages: 20 },
  webSockets: { members: 100, convos: 50, users: 30, messages: { one: 50, many: 500 }, idle: 1_000 },
  roundTripCalls: 5,
}
export type Settings = typeof QUICK
const FULL: Settings = {
  rounds: { rounds: 8, seconds: 3, warmupSeconds: 2 },
  users: 200,
  convos: 500,
  seedMessages: PAGE + 10,
  largeConvos: 10_000,
  messagesPerLargeConvo: 1_000,
  replayKeys: 5_000,
  keyPackages: 4_000,
  keyPackageRounds: 3,
  keyPackageBatch: 1_000,
  expiredKeys: 1_000_000,
  oldMessages: { convos: 1_000, perConvo: 1_000 },
  fanout: { streams: 1_000, messages: 30 },
  webSockets: { members: 1_000, convos: 1_000, users: 100, messages: { one: 50, many: 3_000 }, idle: 10_000 },
  roundTripCalls: 10,
}

const started = Date.now()
export const log = (message: string) =>
  console.log(`[${((Date.now() - started) / 1000).toFixed(0).padStart(3)} s] ${message}`)

/** A database of the bench with its server process, and the load of its users. */
export interface Side extends BenchDatabase {
  server: BenchServer
  load: Workload
}

/** What every question of the bench measures on: built by setUp, torn down by tearDown. */
export interface Bench {
  dist: Dist
  settings: Settings
  /** A temporary directory, removed at the end. */
  work: string
  /** The users' conversations and their seed messages. */
  small: Side
  /** The same conversations among many more, each with `settings.messagesPerLargeConvo` messages. */
  large: Side & { loadSeconds: number }
  /** PostgreSQL's CPU, when it runs on this machine. */
  postgres: CpuMeter | undefined
  /** CPU meters of a run against `server`: its process, PostgreSQL, and this process generating load. */
  meters(server: BenchServer): CpuMeters
  /** A variant driving `server` with requests from `next`, on all the bench's connections. */
  variant(name: string, server: BenchServer, next: () => HttpRequest, check?: HttpLoad['check']): Variant
  /** Another server process (or the bare peer) on `database`, stopped at the end. */
  start(
    database: BenchDatabase,
    name: string,
    opts?: { peer?: BenchServerOptions['peer']; env?: Record<string, string> },
  ): Promise<BenchServer>
  environment(args: string[]): Promise<Environment>
  tearDown(): Promise<void>
}

/**
 * Builds the production code, starts PostgreSQL with two databases (small
 * and large), makes the users' conversations in both through the API, loads
 * the large one, and starts a server process on each.
 */
export async function setUp(opts: { quick: boolean; cpuProfile: boolean }): Promise<Bench> {
  const settings = opts.quick ? QUICK : FULL
  log('building: npm run build')
  await buildProduction()
  const dist = await loadDist()
  const work = await mkdtemp(path.join(os.tmpdir(), 'catbird-bench-'))
  // As root, PostgreSQL runs as another user, which must reach its data directory.
  await chmod(work, 0o755)
  const profileDir = opts.cpuProfile ? path.join(os.tmpdir(), `catbird-bench-profiles-${Date.now()}`) : undefined
  if (profileDir) await mkdir(profileDir)
  const teardown: Array<() => Promise<unknown>> = []
  const tearDown = async () => {
    for (const step of teardown.reverse()) await step().catch((err: unknown) => console.error('teardown:', err))
    await rm(work, { recursive: true, force: true })
    if (profileDir) console.log(`CPU profiles of the server processes: ${profileDir}`)
  }
  try {
    const cluster = await startCluster(dist, work)
    teardown.push(() => cluster.stop())
    const small = await createBenchDatabase(dist, cluster.adminUrl, 'small')
    teardown.push(small.drop)
    const large = await createBenchDatabase(dist, cluster.adminUrl, 'large')
    teardown.push(large.drop)
    const start: Bench['start'] = async (database, name, { peer = false, env } = {}) => {
      const server = await startBenchServer({
        databaseUrl: database.url,
        logFile: path.join(work, `${name}.log`),
        cpuProfDir: profileDir,
        peer,
        ...(env ? { env } : {}),
      })
      teardown.push(() => server.stop())
      return server
    }
    const postgres = await postgresCpu(small.pool)
    const meters = (server: BenchServer): CpuMeters => ({
      app: () => server.run('cpuMicros'),
      loadGenerator: thisProcessCpu,
      ...(postgres ? { postgres } : {}),
    })

    log(`setting up: ${settings.users} users, ${settings.convos} conversations in each database`)
    const users = await Promise.all(Array.from({ length: settings.users }, () => TestUser.create()))
    const tokens = new Tokens()
    const createWorkingSet = async (database: BenchDatabase) => {
      const setup = await startBenchServer({ databaseUrl: database.url, logFile: path.join(work, 'setup.log') })
      try {
        return await createConvos(setup.url, users, settings.convos, MEMBERS_PER_CONVO)
      } finally {
        await setup.stop()
      }
    }
    const smallConvos = await createWorkingSet(small)
    const largeConvos = await createWorkingSet(large)
    await fillMessages(small.pool, settings.seedMessages)
    log(
      `loading the large database: ${settings.largeConvos * settings.messagesPerLargeConvo} messages in ${settings.largeConvos} conversations`,
    )
    const loadStarted = performance.now()
    await addBackgroundConvos(large.pool, settings.largeConvos - settings.convos, SUITE)
    await fillMessages(large.pool, settings.messagesPerLargeConvo)
    const loadSeconds = (performance.now() - loadStarted) / 1000
    await checkpoint(large.pool)
    // Started after the loads (see fillMessages).
    const side = async (database: BenchDatabase, name: string, convos: typeof smallConvos) => {
      const server = await start(database, name)
      return { ...database, server, load: new Workload(new Xrpc(server.url, tokens), convos) }
    }
    const smallSide = await side(small, 'small', smallConvos)
    const largeSide = { ...(await side(large, 'large', largeConvos)), loadSeconds }
    await smallSide.load.mintTokens()

    return {
      dist,
      settings,
      work,
      small: smallSide,
      large: largeSide,
      postgres,
      meters,
      variant: (name, server, next, check) => ({
        name,
        run: (seconds) =>
          measure(meters(server), () =>
            httpLoad({ url: server.url, connections: CONNECTIONS, seconds, next, ...(check ? { check } : {}) }),
          ),
      }),
      start,
      async environment(args) {
        const { rows } = await small.pool.query<Record<string, string>>(`
          SELECT current_setting('server_version') AS version, current_setting('fsync') AS fsync,
                 current_setting('synchronous_commit') AS synchronous_commit,
                 current_setting('full_page_writes') AS full_page_writes,
                 current_setting('shared_buffers') AS shared_buffers`)
        const { version, ...postgresSettings } = rows[0] as Record<string, string>
        return {
          date: new Date(started).toISOString().replace(/\.\d+Z$/, 'Z'),
          command: `npm run bench${args.length ? ` -- ${args.join(' ')}` : ''}`,
          nproc: Number(execFileSync('nproc').toString().trim()),
          cpuModel: os.cpus()[0]?.model ?? 'unknown CPU',
          memoryGiB: os.totalmem() / 2 ** 30,
          node: process.version,
          postgres: `PostgreSQL ${version}`,
          postgresSettings,
          database: cluster.description,
          logLevel: process.env.LOG_LEVEL ?? 'warn',
          poolSize: dist.loadConfig().DATABASE_POOL_SIZE,
          users: settings.users,
          convos: settings.convos,
          connections: CONNECTIONS,
          rounds: settings.rounds.rounds,
          seconds: settings.rounds.seconds,
          minutes: (Date.now() - started) / 60_000,
        }
      },
      tearDown,
    }
  } catch (err) {
    await tearDown()
    throw err
  }
}
