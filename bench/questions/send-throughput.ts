import { cycle, httpLoad, httpLoads, measure, type CpuMeters } from '../load.js'
import { sendStatement } from '../peer.js'
import { findPgbench, pgbenchSends } from '../pgbench.js'
import { atLeast, runsTable, type Section } from '../report.js'
import { interleave, median, ratioOf, type Variant } from '../rounds.js'
import { CONNECTIONS, log, type Bench } from '../setup.js'
import { Workload, type Convo } from '../workload.js'

const VARIANT = {
  pgbench: 'pgbench -M prepared, the same statement',
  peer: 'bare Fastify peer, the same statement prepared',
  unkeyed: 'sendMessage without key',
  twoProcesses: 'sendMessage without key, two server processes',
  keyed: 'sendMessage with a fresh key',
  replay: 'sendMessage replayed (used key)',
  hotUnkeyed: 'one conversation: sendMessage without key',
  hotKeyed: 'one conversation: with a fresh key',
  hotReplay: 'one conversation: replayed',
}

/** pgbench running sendMessage's statement on the small database, when there is a pgbench binary. */
async function pgbenchVariant(bench: Bench): Promise<Variant[]> {
  const binary = findPgbench()
  if (!binary) {
    log('no pgbench binary on PATH (nor in /usr/lib/postgresql/*/bin): the database-limit variant is skipped')
    return []
  }
  const { dist, small, work } = bench
  const pgbench = await pgbenchSends({
    binary,
    url: small.url,
    pool: small.pool,
    statement: sendStatement(dist),
    picks: small.load.everySend(),
    dir: work,
    connections: CONNECTIONS,
  })
  // pgbench is its own client: no server process takes part.
  const databaseOnly: CpuMeters = {
    app: async () => Number.NaN,
    ...(bench.postgres ? { postgres: bench.postgres } : {}),
  }
  return [
    {
      name: VARIANT.pgbench,
      run: (seconds) => measure(databaseOnly, async () => ({ latencies: [], ...(await pgbench(seconds)) })),
    },
  ]
}

/**
 * sendMessage side by side with what bounds it: pgbench and the bare peer
 * running its statement, the server without key, with a fresh key and
 * replayed, two server processes; then the three with every sender in one
 * conversation.
 */
export async function sendThroughput(bench: Bench): Promise<Section & { serverCpuPerSend: number }> {
  const { small, settings } = bench
  const { load, server } = small
  const peer = await bench.start(small, 'peer', { peer: true })
  const pgbench = await pgbenchVariant(bench)
  const hotLoad = new Workload(load.api, [load.convos[0] as Convo])
  // A second instance of the server on the same database: both cores for the server, as two processes.
  const second = await bench.start(small, 'small-second')
  const bothServers: CpuMeters = {
    ...bench.meters(server),
    app: async () => (await server.run('cpuMicros')) + (await second.run('cpuMicros')),
  }
  log(
    `sendMessage: ${pgbench.length ? 'pgbench -M prepared, ' : ''}the bare peer, the server without key, with a fresh key, replayed; ` +
      'then the same three with every sender in one conversation',
  )
  // First use of every key (a write); the replay variants retry them.
  const keyedAhead = async (workload: Workload) => {
    const requests = Array.from({ length: settings.replayKeys }, () => workload.sendMessage(true))
    await httpLoad({
      url: server.url,
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
  const [replays, hotReplays] = [await keyedAhead(load), await keyedAhead(hotLoad)]
  const runs = await interleave(
    [
      ...pgbench,
      // The peer takes the server's very request.
      bench.variant(VARIANT.peer, peer, () => load.sendMessage(false)),
      bench.variant(VARIANT.unkeyed, server, () => load.sendMessage(false)),
      {
        name: VARIANT.twoProcesses,
        run: (seconds) =>
          measure(bothServers, () =>
            httpLoads(
              [server, second].map((each) => ({
                url: each.url,
                connections: CONNECTIONS / 2,
                seconds,
                next: () => load.sendMessage(false),
              })),
            ),
          ),
      },
      bench.variant(VARIANT.keyed, server, () => load.sendMessage(true)),
      bench.variant(VARIANT.replay, server, replays, replayed),
      bench.variant(VARIANT.hotUnkeyed, server, () => hotLoad.sendMessage(false)),
      bench.variant(VARIANT.hotKeyed, server, () => hotLoad.sendMessage(true)),
      bench.variant(VARIANT.hotReplay, server, hotReplays, replayed),
    ],
    settings.rounds,
  )
  const ratio = (a: string, b: string) => ratioOf(runs.get(a) ?? [], runs.get(b) ?? [], 'rps')
  return {
    serverCpuPerSend: median((runs.get(VARIANT.unkeyed) ?? []).map((run) => run.cpu.app)),
    targets: [
      atLeast('1. sendMessage without key / the bare peer, req/s', ratio(VARIANT.unkeyed, VARIANT.peer), 0.85),
      {
        measure: '1. (for comparison) two server processes / one, sendMessage without key, req/s',
        figure: ratio(VARIANT.twoProcesses, VARIANT.unkeyed),
      },
      atLeast('2. sendMessage with a fresh key / without a key, req/s', ratio(VARIANT.keyed, VARIANT.unkeyed), 0.9),
      atLeast('2. the same, every sender in one conversation', ratio(VARIANT.hotKeyed, VARIANT.hotUnkeyed), 0.9),
      atLeast('3. replayed / fresh-key sendMessage, req/s', ratio(VARIANT.replay, VARIANT.keyed), 2),
      {
        measure: '3. (for comparison) the same, one conversation',
        figure: ratio(VARIANT.hotReplay, VARIANT.hotKeyed),
      },
      {
        measure: "5. (distance to the machine's limit) sendMessage without key / pgbench -M prepared, req/s",
        figure: ratio(VARIANT.unkeyed, VARIANT.pgbench),
      },
    ],
    markdown: [
      `### sendMessage, ${CONNECTIONS} connections`,
      '',
      'pgbench and the bare peer run the statement the server sends for sendMessage without a key, prepared. ' +
        "The peer (`bench/peer-child.ts`) takes the server's very request (its token unread) on a Fastify route and reads what the server reads to store it: " +
        "the sender's DID from the body, the group id and epoch from the MLS header (the production build's `src/mls`); " +
        'no auth, no lexicon validation, no idempotency, no logs or metrics. pgbench picks each send with a primary-key lookup of its own. ' +
        '"Two server processes": two instances of the server on the same database, each given half the connections ' +
        '(how a deployment would use both cores; app is their CPU together). ' +
        `"One conversation": every request from the ${hotLoad.users.length} members of one conversation, whose row lock orders them.`,
      '',
      runsTable([...runs]),
      '',
      'Machine CPU busy: all processes on all cores (the server, PostgreSQL, the load generator, and whatever else runs). ' +
        "CPU per request of each process taking part: app is the server process (the peer's for the bare peer; none for pgbench, its own client), " +
        'PostgreSQL all its processes, load generator the bench process running autocannon.',
      '',
    ],
  }
}
