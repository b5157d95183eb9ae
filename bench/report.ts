import { readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { projectRoot } from './dist.js'
import type { FanoutResult } from './fanout.js'
import type { Run } from './load.js'
import type { ParseCost } from './parse.js'
import { median, medianOf, ratioOf, type Metric } from './rounds.js'
import type { RoundTrips } from './roundtrips.js'

export interface Environment {
  date: string
  command: string
  nproc: number
  cpuModel: string
  memoryGiB: number
  node: string
  postgres: string
  postgresSettings: Record<string, string>
  database: string
  logLevel: string
  poolSize: number
  users: number
  convos: number
  connections: number
  rounds: number
  seconds: number
  minutes: number
}

export interface Explained {
  statement: string
  sql: string
  plan: string
}

export interface Results {
  env: Environment
  /** The sendMessage variants, by name (see VARIANT in run.ts). */
  throughput: Map<string, Run[]>
  roundTrips: RoundTrips[]
  keyPackages: {
    runs: Run[]
    callers: number
    perRound: number
    handedOut: number
    distinct: number
    missing: number
    consumed: number
  }
  cleanup: {
    /** One run per slice: while a pass of the worker ran, and as long without (pairs in order). */
    with: Run[]
    without: Run[]
    deleted: number
    expiredLeft: number
    liveLeft: number
    backlog: number
  }
  scale: { runs: Map<string, Run[]>; smallRows: number; largeRows: number; largeConvos: number; loadSeconds: number }
  explain: Explained[]
  fanout: FanoutResult
  /** Reading the MLS header of a message, the first of them the load's typical one. */
  parse: ParseCost[]
}

export const VARIANT = {
  pgbench: 'pgbench -M prepared, the same statement',
  peer: 'bare Fastify peer, the same statement prepared',
  unkeyed: 'sendMessage without key',
  twoProcesses: 'sendMessage without key, two server processes',
  keyed: 'sendMessage with a fresh key',
  replay: 'sendMessage replayed (used key)',
  hotUnkeyed: 'one conversation: sendMessage without key',
  hotKeyed: 'one conversation: with a fresh key',
  hotReplay: 'one conversation: replayed',
  smallGet: 'getMessages, small table',
  largeGet: 'getMessages, large table',
  smallSend: 'sendMessage, small table',
  largeSend: 'sendMessage, large table',
} as const

const fixed = (n: number, digits = 2) => (Number.isFinite(n) ? n.toFixed(digits) : 'n/a')
const count = (n: number) => fixed(n, Number.isInteger(n) ? 0 : 1)
const table = (head: string[], rows: Array<Array<string | number>>) =>
  [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join(
    '\n',
  )

const cpuCell = (runs: Run[], process: keyof Run['cpu']) => {
  const value = median(runs.map((r) => r.cpu[process]))
  return Number.isNaN(value) ? '–' : fixed(value, 0)
}

function runsTable(entries: Array<[string, Run[]]>): string {
  return table(
    ['variant', 'req/s', 'p50 ms', 'p99 ms', 'machine CPU busy', 'CPU µs/req: app', 'PostgreSQL', 'load generator'],
    entries.map(([name, runs]) => [
      name,
      fixed(medianOf(runs, 'rps'), 0),
      fixed(medianOf(runs, 'p50')),
      fixed(medianOf(runs, 'p99')),
      `${fixed(medianOf(runs, 'machineBusy') * 100, 0)}%`,
      cpuCell(runs, 'app'),
      cpuCell(runs, 'postgres'),
      cpuCell(runs, 'loadGenerator'),
    ]),
  )
}

interface Target {
  measure: string
  figure: number
  digits?: number
  /** Absent for figures shown for comparison only. */
  target?: string
  met?: boolean
}

function targets(r: Results): Target[] {
  const t = r.throughput
  const runs = (name: string, from = t) => from.get(name) ?? []
  const ratio = (a: string, b: string, metric: Metric, from = t) => ratioOf(runs(a, from), runs(b, from), metric)
  const atLeast = (measure: string, figure: number, min: number): Target => ({
    measure,
    figure,
    target: `≥ ${min}`,
    met: figure >= min,
  })
  const atMost = (measure: string, figure: number, max: number, digits = 2): Target => ({
    measure,
    figure,
    digits,
    target: `≤ ${max}`,
    met: figure <= max,
  })
  const trips = (endpoint: string, what: 'request' | 'transactions' | 'inTransaction' = 'request') =>
    r.roundTrips.find((x) => x.endpoint === endpoint)?.[what] ?? Number.NaN
  const c = r.cleanup
  const s = r.scale.runs
  const changes = ['createConvo', 'createConvo (key)', 'addMembers', 'addMembers (key)', 'leaveConvo']
  return [
    atLeast('1. sendMessage without key / the bare peer, req/s', ratio(VARIANT.unkeyed, VARIANT.peer, 'rps'), 0.85),
    atLeast(
      '2. sendMessage with a fresh key / without a key, req/s',
      ratio(VARIANT.keyed, VARIANT.unkeyed, 'rps'),
      0.9,
    ),
    atLeast('2. the same, every sender in one conversation', ratio(VARIANT.hotKeyed, VARIANT.hotUnkeyed, 'rps'), 0.9),
    atLeast('3. replayed / fresh-key sendMessage, req/s', ratio(VARIANT.replay, VARIANT.keyed, 'rps'), 2),
    {
      measure: '3. (for comparison) the same, one conversation',
      figure: ratio(VARIANT.hotReplay, VARIANT.hotKeyed, 'rps'),
    },
    atMost('4. round trips, sendMessage with a fresh key', trips('sendMessage (key)'), 2, 1),
    atMost('4. transactions it holds open across round trips', trips('sendMessage (key)', 'transactions'), 0, 0),
    atMost('4. round trips, sendMessage replayed', trips('sendMessage (replay)'), 1, 1),
    atMost(
      `4. round trips in the conversation's transaction, the most of ${changes.join(', ')}`,
      Math.max(...changes.map((e) => trips(e, 'inTransaction'))),
      4,
      1,
    ),
    {
      measure:
        "4. (for comparison) the same on the request's path: with a Welcome, one more per member added, on its shard",
      figure: Math.max(...changes.map((e) => trips(e))),
      digits: 1,
    },
    {
      measure: '1. (for comparison) two server processes / one, sendMessage without key, req/s',
      figure: ratio(VARIANT.twoProcesses, VARIANT.unkeyed, 'rps'),
    },
    {
      measure: "5. (distance to the machine's limit) sendMessage without key / pgbench -M prepared, req/s",
      figure: ratio(VARIANT.unkeyed, VARIANT.pgbench, 'rps'),
    },
    atMost('6. getKeyPackages: packages handed out twice', r.keyPackages.handedOut - r.keyPackages.distinct, 0, 0),
    atMost('7. sendMessage p99 during cleanup / without cleanup', ratioOf(c.with, c.without, 'p99'), 1.25),
    atMost('7. expired idempotency records left after cleanup', c.expiredLeft, 0, 0),
    atMost('8. getMessages p50, large / small table', ratio(VARIANT.largeGet, VARIANT.smallGet, 'p50', s), 1.5),
    atMost('8. getMessages p99, large / small table', ratio(VARIANT.largeGet, VARIANT.smallGet, 'p99', s), 1.5),
    atMost('8. sendMessage p50, large / small table', ratio(VARIANT.largeSend, VARIANT.smallSend, 'p50', s), 1.5),
    atMost('8. sendMessage p99, large / small table', ratio(VARIANT.largeSend, VARIANT.smallSend, 'p99', s), 1.5),
    atMost(
      '8. sequential scans in the EXPLAIN plans below',
      r.explain.filter((e) => /Seq Scan/.test(e.plan)).length,
      0,
      0,
    ),
    atMost('9. MLS header read of a typical message / server CPU per sendMessage without key', headerShare(r), 0.05, 3),
  ]
}

/** Server CPU per sendMessage without key, µs. */
const serverCpuPerSend = (r: Results) => median((r.throughput.get(VARIANT.unkeyed) ?? []).map((run) => run.cpu.app))
/** The header read's share of it: the most throughput the read can cost. */
const headerShare = (r: Results, micros = r.parse[0]?.micros ?? Number.NaN) => micros / serverCpuPerSend(r)

/** The figures as Markdown: printed to the terminal and written into BENCHMARKS.md. */
export function renderResults(r: Results): string {
  const e = r.env
  const k = r.keyPackages
  const c = r.cleanup
  const sc = r.scale
  const millions = (n: number) => `${fixed(n / 1e6, 1)} M`
  const lines = [
    `Measured ${e.date} with \`${e.command}\` (${fixed(e.minutes, 1)} minutes).`,
    '',
    table(
      ['', ''],
      [
        ['machine', `${e.nproc} cores (\`nproc\`), ${e.cpuModel}, ${fixed(e.memoryGiB, 1)} GiB memory`],
        ['Node', e.node],
        [
          'PostgreSQL',
          `${e.postgres}, ${e.database}; ${Object.entries(e.postgresSettings)
            .map(([n, v]) => `${n}=${v}`)
            .join(', ')}`,
        ],
        ['server', `production build (dist/) in its own process; LOG_LEVEL=${e.logLevel}, pool of ${e.poolSize}`],
        [
          'load',
          `autocannon 9 in the bench process, ${e.connections} connections; ${e.users} users in ${e.convos} conversations, a random member of a random conversation per request`,
        ],
        [
          'method',
          `variants interleaved A, B, A, B: a warm-up pass, then ${e.rounds} rounds of ${e.seconds} s each; figures are medians over rounds, ratios the median of the per-round ratios`,
        ],
      ],
    ),
    '',
    '### Targets',
    '',
    table(
      ['measure', 'figure', 'target', 'met'],
      targets(r).map((t) => [
        t.measure,
        fixed(t.figure, t.digits ?? 2),
        t.target ?? '',
        t.met === undefined ? '' : t.met ? 'yes' : '**no**',
      ]),
    ),
    '',
    '### sendMessage, 32 connections',
    '',
    'pgbench and the bare peer run the statement the server sends for sendMessage without a key, prepared; the peer does it behind a Fastify route ' +
      'with no auth, no validation, no MLS header read, no logs or metrics (`bench/peer-child.ts`); pgbench picks each send with a primary-key lookup of its own. ' +
      '"Two server processes": two instances of the server on the same database, each given half the connections ' +
      '(how a deployment would use both cores; app is their CPU together). ' +
      '"One conversation": every request from the 4 members of one conversation, whose row lock orders them.',
    '',
    runsTable([...r.throughput]),
    '',
    'Machine CPU busy: all processes on all cores (the server, PostgreSQL, the load generator, and whatever else runs). ' +
      "CPU per request of each process taking part: app is the server process (the peer's for the bare peer; none for pgbench, its own client), " +
      'PostgreSQL all its processes, load generator the bench process running autocannon.',
    '',
    '### Reading the MLS header',
    '',
    "sendMessage reads every message's MLS header (wire format, group id, epoch, content type) before storing it. CPU time of one read " +
      "by the production build's `src/mls` on real messages, in the bench process (median of 5 repeats of 50,000 reads after a warm-up), and as a share of " +
      'the server CPU per sendMessage without key measured above.',
    '',
    table(
      ['message', 'bytes', 'µs per read', 'share of server CPU per sendMessage'],
      r.parse.map((p) => [p.message, p.bytes, fixed(p.micros), `${fixed(headerShare(r, p.micros) * 100, 2)}%`]),
    ),
    '',
    '### Database round trips per request',
    '',
    "Statements sent to PostgreSQL per request (a string of several statements sent at once counts as one), counted by a hook on the server pool's connections: " +
      "on the request's own path (what its latency waits for), of those the ones inside the transaction it began (from BEGIN to COMMIT: " +
      "the conversation's row lock is held for part of them), and in the background because of it (the event fan-out reading each new message back, " +
      'and the NOTIFY telling other instances; both batched under load). createConvo and addMembers reserve the key packages their Welcome names ' +
      "before their transaction, one statement per member added on the member's shard (issue 19).",
    '',
    table(
      ['method', "request's path", 'in its transaction', 'transactions begun', 'background'],
      r.roundTrips.map((x) => [
        x.endpoint,
        count(x.request),
        count(x.inTransaction),
        count(x.transactions),
        count(x.background),
      ]),
    ),
    '',
    `### getKeyPackages under contention`,
    '',
    `${k.callers} callers (one connection each) claiming one user's key packages, ${k.perRound} packages per round, as many requests as packages. ` +
      `Handed out: ${k.handedOut}; distinct: ${k.distinct}; consumed in the database: ${k.consumed}; answered \`missing\`: ${k.missing}.`,
    '',
    runsTable([['getKeyPackages, one owner', k.runs]]),
    '',
    '### Idempotency cleanup under load',
    '',
    `${millions(c.backlog)} expired records bulk-loaded; then, under sendMessage with fresh keys (32 connections), slices while one pass of the cleanup worker runs ` +
      `(up to 100 statements deleting 1,000 records each, with the worker's pause between them) alternate with equally long slices without a pass ` +
      `(A B, B A, ...; \`VACUUM\` after each pair, outside the slices) until the backlog is gone: ${c.with.length} passes, ` +
      `${fixed(
        c.with.reduce((sum, r) => sum + r.seconds, 0),
        1,
      )} s, ${c.deleted} records deleted. ` +
      `Afterwards: ${c.expiredLeft} expired records left; ${c.liveLeft} live ones (written by the load, not yet expired). ` +
      'Figures are medians over slices; the target ratio is the median of the per-pair ratios.',
    '',
    runsTable([
      ['sendMessage with key, while cleanup passes ran', c.with],
      ['sendMessage with key, between passes', c.without],
    ]),
    '',
    '### Scale',
    '',
    `Two databases side by side, each with its own server process: the small one (${sc.smallRows} messages) and the large one (${millions(sc.largeRows)} messages in ${sc.largeConvos} conversations, ` +
      `1,000 per conversation, interleaved in time; the users' conversations are among them; loaded in ${fixed(sc.loadSeconds, 0)} s). getMessages reads a page of 50.`,
    '',
    runsTable([...sc.runs]),
    '',
    '#### EXPLAIN (ANALYZE, BUFFERS), large table',
    '',
    'The statements the services send, captured from a service call and explained with the same parameters (sendMessage inside a rolled-back transaction).',
    '',
    ...r.explain.flatMap((x) => [`${x.statement}:`, '', '```sql', x.sql.trim(), '```', '', '```', x.plan, '```', '']),
  ]
  const f = r.fanout
  lines.push(
    '### SSE fan-out',
    '',
    `${f.streams} event streams open on one conversation (${Math.ceil(f.streams / f.streamsPerUser)} members, ${f.streamsPerUser} streams each), ` +
      `served by the same server process; ${f.messages} messages sent one after another. Latency is from the sendMessage reply ` +
      'to the event arriving on a stream, over every (stream, message) pair.',
    '',
    '| streams | events expected | delivered | p50 ms | p99 ms | max ms |',
    '|---|---|---|---|---|---|',
    `| ${f.streams} | ${f.expected} | ${f.delivered} | ${fixed(f.p50Ms, 1)} | ${fixed(f.p99Ms, 1)} | ${fixed(f.maxMs, 1)} |`,
    '',
  )
  return lines.join('\n')
}

const START = '<!-- bench:results:start -->'
const END = '<!-- bench:results:end -->'

/** Replaces the generated part of BENCHMARKS.md, keeping the written parts around it. */
export function writeBenchmarksFile(results: string): string {
  const file = path.join(projectRoot, 'BENCHMARKS.md')
  const block = `${START}\n${results}\n${END}`
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch {
    text = `# Benchmarks\n\n${START}\n${END}\n`
  }
  const start = text.indexOf(START)
  const end = text.indexOf(END)
  text =
    start >= 0 && end > start
      ? text.slice(0, start) + block + text.slice(end + END.length)
      : `${text.trimEnd()}\n\n${block}\n`
  writeFileSync(file, text)
  return file
}
