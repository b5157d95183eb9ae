import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { chmod, mkdir, mkdtemp, rm } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import pg from 'pg'
import { message, NSID, SeedClient, SUITE, TestUser, xrpcClient } from '../test/helpers/index.js'
import { Tokens, Xrpc, type HttpRequest } from './client.js'
import { addBackgroundConvos, count, fillMessages, insertExpiredIdempotencyKeys, insertKeyPackages } from './data.js'
import { runFanoutBench } from './fanout.js'
import { buildProduction, loadDist, type Dist } from './dist.js'
import { thisProcessCpu, postgresCpu } from './cpu.js'
import { httpLoad, httpLoads, measure, type CpuMeters, type Run } from './load.js'
import { sendStatement } from './peer.js'
import { findPgbench, pgbenchSends } from './pgbench.js'
import { measureHeaderReads } from './parse.js'
import { observeQueries, type SentQuery } from './queries.js'
import { renderResults, VARIANT, writeBenchmarksFile, type Explained, type Results } from './report.js'
import { interleave, type RoundsOptions } from './rounds.js'
import { countRoundTrips } from './roundtrips.js'
import { startBenchServer, type BenchServer } from './server.js'
import { createConvos, PAGE, PLAINTEXT_BYTES, Workload, type Convo } from './workload.js'

const args = process.argv.slice(2)
const quick = args.includes('--quick')
/** Writes V8 CPU profiles of both server processes (open them in Chrome DevTools). */
const cpuProfile = args.includes('--cpu-prof')

const settings = quick
  ? {
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
      expiredKeys: 50_000,
      fanout: { streams: 100, messages: 20 },
      roundTripCalls: 5,
    }
  : {
      rounds: { rounds: 8, seconds: 3, warmupSeconds: 2 },
      users: 200,
      convos: 500,
      seedMessages: PAGE + 10,
      largeConvos: 10_000,
      messagesPerLargeConvo: 1_000,
      replayKeys: 5_000,
      keyPackages: 4_000,
      keyPackageRounds: 3,
      expiredKeys: 1_000_000,
      fanout: { streams: 1_000, messages: 30 },
      roundTripCalls: 10,
    }
const CONNECTIONS = 32
const MEMBERS_PER_CONVO = 4
const KEY_PACKAGE_CALLERS = 20
/** Longest a cleanup run may take before the bench gives up on it. */
const CLEANUP_LIMIT_SECONDS = 300

const cycle = <T>(items: T[]) => {
  let i = 0
  return () => items[i++ % items.length] as T
}
const started = Date.now()
const log = (message: string) => console.log(`[${((Date.now() - started) / 1000).toFixed(0).padStart(3)} s] ${message}`)

interface Cluster {
  adminUrl: string
  description: string
  stop(): Promise<void>
}

/** DATABASE_URL's server, or an embedded PostgreSQL with default (durable) settings in `dir`. */
async function startCluster(dist: Dist, dir: string): Promise<Cluster> {
  if (process.env.DATABASE_URL) {
    return { adminUrl: process.env.DATABASE_URL, description: 'the server at DATABASE_URL', stop: async () => {} }
  }
  const embedded = await dist.startEmbeddedPostgres({
    dataDir: path.join(dir, 'postgres'),
    port: 20_000 + Math.floor(Math.random() * 20_000),
  })
  return {
    adminUrl: embedded.url,
    description: 'embedded, fresh cluster in a temporary directory',
    stop: embedded.stop,
  }
}

/** A new database on the cluster (dropped by the returned function), migrated. */
async function createBenchDatabase(dist: Dist, adminUrl: string, role: string) {
  const name = `catbird_bench_${role}_${randomBytes(4).toString('hex')}`
  const admin = new pg.Client(adminUrl)
  await admin.connect()
  await admin.query(`CREATE DATABASE ${name}`).finally(() => admin.end())
  const url = new URL(adminUrl)
  url.pathname = `/${name}`
  const database = dist.createDatabase({ url: url.href, poolSize: 4 })
  await dist.migrateToLatest(database.db)
  const drop = async () => {
    await database.close()
    const client = new pg.Client(adminUrl)
    await client.connect()
    await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).finally(() => client.end())
  }
  return { url: url.href, pool: database.pool, db: database.db, drop }
}

/** CHECKPOINT needs a superuser or pg_checkpoint; without, the next automatic one comes later. */
const checkpoint = (pool: pg.Pool) => pool.query('CHECKPOINT').catch(() => {})

async function main() {
  log('building: npm run build')
  await buildProduction()
  const dist = await loadDist()
  const config = dist.loadConfig()
  const work = await mkdtemp(path.join(os.tmpdir(), 'catbird-bench-'))
  // As root, PostgreSQL runs as another user, which must reach its data directory.
  await chmod(work, 0o755)
  const profileDir = cpuProfile ? path.join(os.tmpdir(), `catbird-bench-profiles-${Date.now()}`) : undefined
  if (profileDir) await mkdir(profileDir)
  const teardown: Array<() => Promise<unknown>> = []
  try {
    const cluster = await startCluster(dist, work)
    teardown.push(() => cluster.stop())
    const small = await createBenchDatabase(dist, cluster.adminUrl, 'small')
    teardown.push(small.drop)
    const large = await createBenchDatabase(dist, cluster.adminUrl, 'large')
    teardown.push(large.drop)
    const start = async (db: { url: string }, name: string) => {
      const server = await startBenchServer({
        databaseUrl: db.url,
        logFile: path.join(work, `${name}.log`),
        cpuProfDir: profileDir,
      })
      teardown.push(() => server.stop())
      return server
    }
    const postgres = await postgresCpu(small.pool)
    /** CPU meters of a run against `server`: its process, PostgreSQL, and this process generating load. */
    const meters = (server: BenchServer): CpuMeters => ({
      app: () => server.run('cpuMicros'),
      loadGenerator: thisProcessCpu,
      ...(postgres ? { postgres } : {}),
    })

    log(`setting up: ${settings.users} users, ${settings.convos} conversations in each database`)
    const users = await Promise.all(Array.from({ length: settings.users }, () => TestUser.create()))
    const tokens = new Tokens()
    const createWorkingSet = async (db: { url: string }) => {
      const setup = await startBenchServer({ databaseUrl: db.url, logFile: path.join(work, 'setup.log') })
      try {
        return await createConvos(setup.url, users, settings.convos, MEMBERS_PER_CONVO)
      } finally {
        await setup.stop()
      }
    }
    const smallConvos = await createWorkingSet(small)
    const largeConvos = await createWorkingSet(large)
    await fillMessages(small.pool, settings.seedMessages)
    const largeRows = settings.largeConvos * settings.messagesPerLargeConvo
    log(`loading the large database: ${largeRows} messages in ${settings.largeConvos} conversations`)
    const loadStarted = performance.now()
    await addBackgroundConvos(large.pool, settings.largeConvos - settings.convos, SUITE)
    await fillMessages(large.pool, settings.messagesPerLargeConvo)
    const loadSeconds = (performance.now() - loadStarted) / 1000
    await checkpoint(large.pool)
    // Started after the loads (see fillMessages).
    const smallServer = await start(small, 'small')
    const largeServer = await start(large, 'large')
    const smallLoad = new Workload(new Xrpc(smallServer.url, tokens), smallConvos)
    const largeLoad = new Workload(new Xrpc(largeServer.url, tokens), largeConvos)
    await smallLoad.mintTokens()

    log('reading MLS message headers')
    const parse = await headerReads(dist, smallLoad)

    log('round trips per request')
    const roundTrips = await countRoundTrips(smallLoad.api, smallServer, settings.roundTripCalls)
    for (const r of roundTrips) {
      console.log(
        `  ${r.endpoint.padEnd(34)} ${r.request} (in its transaction ${r.inTransaction}, background ${r.background})`,
      )
    }

    const http =
      (
        server: BenchServer,
        next: () => HttpRequest,
        check?: (body: string, headers: Record<string, unknown>) => void,
      ) =>
      (seconds: number) =>
        measure(meters(server), () =>
          httpLoad({ url: server.url, connections: CONNECTIONS, seconds, next, ...(check ? { check } : {}) }),
        )

    const peer = await startBenchServer({ databaseUrl: small.url, logFile: path.join(work, 'peer.log'), peer: true })
    teardown.push(() => peer.stop())
    const pgbenchBinary = findPgbench()
    const pgbench = pgbenchBinary
      ? await pgbenchSends({
          binary: pgbenchBinary,
          url: small.url,
          pool: small.pool,
          statement: sendStatement(dist, { db: small.db }),
          picks: smallLoad.everySend(),
          dir: work,
          connections: CONNECTIONS,
        })
      : undefined
    if (!pgbench)
      log('no pgbench binary on PATH (nor in /usr/lib/postgresql/*/bin): the database-limit variant is skipped')
    // pgbench is its own client: no server process takes part.
    const databaseOnly: CpuMeters = { app: async () => Number.NaN, ...(postgres ? { postgres } : {}) }
    const hotLoad = new Workload(smallLoad.api, [smallConvos[0] as Convo])
    // A second instance of the server on the same database: both cores for the server, as two processes.
    const secondServer = await start(small, 'small-second')
    const twoServers = [smallServer, secondServer]
    const bothServers: CpuMeters = {
      ...meters(smallServer),
      app: async () => (await smallServer.run('cpuMicros')) + (await secondServer.run('cpuMicros')),
    }
    log(
      `sendMessage: ${pgbench ? 'pgbench -M prepared, ' : ''}the bare peer, the server without key, with a fresh key, replayed; ` +
        'then the same three with every sender in one conversation',
    )
    // First use of every key (a write); the replay variants retry them.
    const keyedAhead = async (load: Workload) => {
      const requests = Array.from({ length: settings.replayKeys }, () => load.sendMessage(true))
      await httpLoad({
        url: smallServer.url,
        connections: CONNECTIONS,
        seconds: 120,
        amount: requests.length,
        next: cycle(requests),
      })
      return cycle(requests)
    }
    const replayed = (_body: string, headers: Record<string, unknown>) => {
      if (headers['idempotent-replayed'] !== 'true') throw new Error('a retried sendMessage was not replayed')
    }
    const [replays, hotReplays] = [await keyedAhead(smallLoad), await keyedAhead(hotLoad)]
    const throughput = await interleave(
      [
        ...(pgbench
          ? [
              {
                name: VARIANT.pgbench,
                run: (seconds: number) =>
                  measure(databaseOnly, async () => ({ latencies: [], ...(await pgbench(seconds)) })),
              },
            ]
          : []),
        { name: VARIANT.peer, run: http(peer, () => smallLoad.peerSend()) },
        { name: VARIANT.unkeyed, run: http(smallServer, () => smallLoad.sendMessage(false)) },
        {
          name: VARIANT.twoProcesses,
          run: (seconds: number) =>
            measure(bothServers, () =>
              httpLoads(
                twoServers.map((server) => ({
                  url: server.url,
                  connections: CONNECTIONS / twoServers.length,
                  seconds,
                  next: () => smallLoad.sendMessage(false),
                })),
              ),
            ),
        },
        { name: VARIANT.keyed, run: http(smallServer, () => smallLoad.sendMessage(true)) },
        { name: VARIANT.replay, run: http(smallServer, replays, replayed) },
        { name: VARIANT.hotUnkeyed, run: http(smallServer, () => hotLoad.sendMessage(false)) },
        { name: VARIANT.hotKeyed, run: http(smallServer, () => hotLoad.sendMessage(true)) },
        { name: VARIANT.hotReplay, run: http(smallServer, hotReplays, replayed) },
      ],
      settings.rounds,
    )

    log(`getKeyPackages: ${KEY_PACKAGE_CALLERS} callers, one owner`)
    const keyPackages = await keyPackageContention(smallLoad, smallServer, meters(smallServer), small.pool)

    log('idempotency cleanup under load')
    const cleanup = await cleanupUnderLoad(smallLoad, smallServer, meters(smallServer), small.pool, settings.rounds)

    log('scale: the small database and the large one, side by side')
    for (const workload of [smallLoad, largeLoad]) {
      const page = await workload.api.ok<{ messages: unknown[] }>(
        workload.convos[0]?.members[0] as TestUser,
        NSID.getMessages,
        {
          params: { convoId: workload.convos[0]?.id as string, limit: PAGE },
        },
      )
      if (page.messages.length !== PAGE)
        throw new Error(`getMessages gave ${page.messages.length} messages, not a page`)
    }
    await largeLoad.mintTokens()
    const smallRows = await count(small.pool, 'SELECT count(*) AS n FROM message')
    const largeCount = await count(large.pool, 'SELECT count(*) AS n FROM message')
    const scaleRuns = await interleave(
      [
        { name: VARIANT.smallGet, run: http(smallServer, () => smallLoad.getMessages()) },
        { name: VARIANT.largeGet, run: http(largeServer, () => largeLoad.getMessages()) },
        { name: VARIANT.smallSend, run: http(smallServer, () => smallLoad.sendMessage(false)) },
        { name: VARIANT.largeSend, run: http(largeServer, () => largeLoad.sendMessage(false)) },
      ],
      settings.rounds,
    )
    const explain = await explainStatements(dist, large.url, largeLoad)

    log(`SSE fan-out, ${settings.fanout.streams} streams`)
    const fanout = await runFanoutBench({ url: smallServer.url, ...settings.fanout })

    const pgInfo = await small.pool.query<Record<string, string>>(`
      SELECT current_setting('server_version') AS version, current_setting('fsync') AS fsync,
             current_setting('synchronous_commit') AS synchronous_commit,
             current_setting('full_page_writes') AS full_page_writes,
             current_setting('shared_buffers') AS shared_buffers`)
    const { version, ...postgresSettings } = pgInfo.rows[0] as Record<string, string>
    const results: Results = {
      env: {
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
        poolSize: config.DATABASE_POOL_SIZE,
        users: settings.users,
        convos: settings.convos,
        connections: CONNECTIONS,
        rounds: settings.rounds.rounds,
        seconds: settings.rounds.seconds,
        minutes: (Date.now() - started) / 60_000,
      },
      throughput,
      roundTrips,
      keyPackages,
      cleanup,
      scale: { runs: scaleRuns, smallRows, largeRows: largeCount, largeConvos: settings.largeConvos, loadSeconds },
      explain,
      fanout,
      parse,
    }
    const markdown = renderResults(results)
    console.log(`\n${markdown}`)
    console.log(`written to ${writeBenchmarksFile(markdown)}`)
  } finally {
    for (const step of teardown.reverse()) await step().catch((err: unknown) => console.error('teardown:', err))
    await rm(work, { recursive: true, force: true })
    if (profileDir) console.log(`CPU profiles of the server processes: ${profileDir}`)
  }
}

/**
 * The header read of every sendMessage, on real messages: a typical one of
 * the load, a large one (64 KiB of text), and a commit.
 */
async function headerReads(dist: Dist, load: Workload): Promise<Results['parse']> {
  const convo = load.convos[0] as Convo
  const member = convo.members[0] as TestUser
  const update = await new SeedClient(xrpcClient(load.api.url)).prepareCommit(member, convo.id)
  return measureHeaderReads(dist.readMessageHeader, [
    { message: `application message, ${PLAINTEXT_BYTES} bytes of text (the load's)`, bytes: load.sample() },
    { message: 'application message, 64 KiB of text', bytes: await message(member, convo.id, new Uint8Array(65536)) },
    { message: 'commit (a key update), PrivateMessage', bytes: update.commit },
  ])
}

/**
 * Callers competing for one user's key packages: as many requests as
 * packages, each must get one, and no package may go to two callers.
 */
async function keyPackageContention(
  load: Workload,
  server: BenchServer,
  meters: CpuMeters,
  pool: pg.Pool,
): Promise<Results['keyPackages']> {
  const owner = await TestUser.create()
  const callers = load.users.slice(0, KEY_PACKAGE_CALLERS)
  const nsid = NSID.getKeyPackages
  await load.api.tokens.mint(callers, [nsid])
  const requests = callers.map((caller) =>
    load.api.request(caller, nsid, { params: { dids: [owner.did], cipherSuite: SUITE } }),
  )
  const handed = new Set<string>()
  let handedOut = 0
  let missing = 0
  const runs: Run[] = []
  for (let round = 0; round <= settings.keyPackageRounds; round++) {
    await insertKeyPackages(pool, owner.did, settings.keyPackages, SUITE, String(round))
    const run = await measure(meters, () =>
      httpLoad({
        url: server.url,
        connections: KEY_PACKAGE_CALLERS,
        seconds: 120,
        amount: settings.keyPackages,
        next: cycle(requests),
        check: (body) => {
          const output = JSON.parse(body) as { keyPackages: Array<{ keyPackage: string }>; missing?: string[] }
          for (const kp of output.keyPackages) {
            handedOut++
            handed.add(kp.keyPackage)
          }
          missing += output.missing?.length ?? 0
        },
      }),
    )
    // Round 0 warms up; all rounds count towards the double hand-out check.
    if (round > 0) runs.push(run)
    console.log(
      `  round ${round} ${run.rps.toFixed(0)} req/s  p50 ${run.p50.toFixed(2)} ms  p99 ${run.p99.toFixed(2)} ms`,
    )
  }
  if (handed.size !== handedOut) {
    throw new Error(`getKeyPackages handed out ${handedOut} packages but only ${handed.size} distinct ones`)
  }
  const consumed = await count(
    pool,
    'SELECT count(*) AS n FROM key_package WHERE owner_did = $1 AND consumed_at IS NOT NULL',
    [owner.did],
  )
  return {
    runs,
    callers: callers.length,
    perRound: settings.keyPackages,
    handedOut,
    distinct: handed.size,
    missing,
    consumed,
  }
}

/**
 * sendMessage with fresh keys while the cleanup worker deletes a backlog of
 * expired records: a slice of load while one pass of the worker runs, a
 * slice as long without one (the worker pauses between passes), and so on
 * until the backlog is gone. The kinds of slice alternate every few seconds
 * (A B, B A, ...), so the machine's drift falls on both alike.
 */
async function cleanupUnderLoad(
  load: Workload,
  server: BenchServer,
  meters: CpuMeters,
  pool: pg.Pool,
  rounds: RoundsOptions,
): Promise<Results['cleanup']> {
  const keyed = (seconds: number, until?: Promise<unknown>) => () =>
    httpLoad({
      url: server.url,
      connections: CONNECTIONS,
      seconds,
      next: () => load.sendMessage(true),
      ...(until ? { until } : {}),
    })
  await measure(meters, keyed(rounds.warmupSeconds))
  await insertExpiredIdempotencyKeys(pool, settings.expiredKeys, 'cleanup')
  await checkpoint(pool)
  const backlogLeft = () =>
    count(pool, 'SELECT count(*) AS n FROM (SELECT FROM idempotency_key WHERE expires_at <= now() LIMIT 1) AS expired')
  const result: Results['cleanup'] = {
    with: [],
    without: [],
    deleted: 0,
    expiredLeft: 0,
    liveLeft: 0,
    backlog: settings.expiredKeys,
  }
  let sliceSeconds = rounds.seconds
  const withPass = async () => {
    const pass = server.run('cleanupPass')
    const run = await measure(meters, keyed(CLEANUP_LIMIT_SECONDS, pass))
    result.deleted += await pass
    result.with.push(run)
    sliceSeconds = run.seconds
  }
  const withoutPass = async () => {
    result.without.push(await measure(meters, keyed(sliceSeconds)))
  }
  while (await backlogLeft()) {
    if (result.with.length % 2 === 0) {
      await withPass()
      await withoutPass()
    } else {
      await withoutPass()
      await withPass()
    }
    // What autovacuum would do at a moment of its choosing, done outside the slices.
    await pool.query('VACUUM idempotency_key')
    const [during, between] = [result.with.at(-1) as Run, result.without.at(-1) as Run]
    log(
      `  pass ${result.with.length}: ${during.seconds.toFixed(1)} s, p99 ${during.p99.toFixed(2)} ms during the pass, ` +
        `${between.p99.toFixed(2)} ms without`,
    )
  }
  result.expiredLeft = await count(pool, 'SELECT count(*) AS n FROM idempotency_key WHERE expires_at <= now()')
  result.liveLeft = await count(pool, 'SELECT count(*) AS n FROM idempotency_key WHERE expires_at > now()')
  return result
}

/**
 * EXPLAIN (ANALYZE, BUFFERS) of the statements getMessages and sendMessage
 * send, captured from the services themselves on the large database.
 */
class RolledBack extends Error {}

async function explainStatements(dist: Dist, url: string, load: Workload): Promise<Explained[]> {
  const database = dist.createDatabase({ url, poolSize: 1 })
  const sent: SentQuery[] = []
  observeQueries(database.pool, (query) => sent.push(query))
  const convo = load.convos[0] as Convo
  const did = (convo.members[0] as TestUser).did
  try {
    await dist.listMessages(database.db, { convoId: convo.id, did, limit: PAGE })
    const [membership, page] = sent.splice(0)
    // Captured in a transaction rolled back: its message id (made by the server) stays free for the EXPLAIN ANALYZE below.
    await database.db
      .transaction()
      .execute(async (trx) => {
        await dist.sendMessage(trx, { ...load.sendArgs(convo), sender: did })
        throw new RolledBack()
      })
      .catch((err: unknown) => {
        if (!(err instanceof RolledBack)) throw err
      })
    const [send] = sent.filter((query) => !/^(BEGIN|COMMIT|ROLLBACK)/i.test(query.text)).splice(-1)
    sent.splice(0)
    const statements: Array<[string, SentQuery | undefined]> = [
      ['getMessages, statement 1 (membership)', membership],
      ['getMessages, statement 2 (the page)', page],
      ['sendMessage (its one statement)', send],
    ]
    const client = new pg.Client(url)
    await client.connect()
    try {
      const explained: Explained[] = []
      for (const [statement, query] of statements) {
        if (!query) throw new Error(`no statement captured for ${statement}`)
        await client.query('BEGIN')
        const { rows } = await client.query<{ 'QUERY PLAN': string }>(
          `EXPLAIN (ANALYZE, BUFFERS) ${query.text}`,
          query.values,
        )
        await client.query('ROLLBACK')
        explained.push({ statement, sql: query.text, plan: rows.map((r) => r['QUERY PLAN']).join('\n') })
      }
      return explained
    } finally {
      await client.end()
    }
  } finally {
    await database.close()
  }
}

await main()
