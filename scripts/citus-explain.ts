/**
 * Runs every write path of the services on a Citus cluster
 * (scripts/citus.sh explain), as the server runs there (delegated writes
 * on: src/db/delegated.ts), and counts, for each, on **every** node:
 *
 * - the statements it ran there (pg_stat_statements, top-level: a delegated
 *   write's call on the worker holding its shard; a distributed
 *   transaction's BEGIN, a COPY of intermediate results, a PREPARE
 *   TRANSACTION and COMMIT PREPARED sent to it by another node);
 * - the two-phase commits it started (rows added to its
 *   pg_dist_transaction, with Citus's 2PC recovery paused so none is
 *   removed meanwhile);
 *
 * and the Task Count of the plan of each statement the server sent. Exits 1
 * when a hot path (a request's write: test/helpers/write-paths.ts) made a
 * two-phase commit on any node. Each write's first call makes its function
 * (DDL, committed in two phases on every node, once per cluster): those are
 * made first, apart.
 */
import { Kysely, PostgresDialect, type CompiledQuery } from 'kysely'
import pg from 'pg'
import { createDatabase } from '../src/db/index.js'
import type { DatabaseSchema } from '../src/db/schema.js'
import { runWritePaths } from '../test/helpers/write-paths.js'

const url = process.env.DATABASE_URL
if (!url) throw new Error('DATABASE_URL: the Citus coordinator')
const database = createDatabase({ url, poolSize: 4, delegatedWrites: true })
const captured: CompiledQuery[] = []
const db = new Kysely<DatabaseSchema>({
  dialect: new PostgresDialect({ pool: database.pool }),
  log: (event) => void (event.level === 'query' && captured.push(event.query)),
})

// Every node, by a connection of its own to the same database.
const { rows: nodeRows } = await database.pool.query<{ name: string; port: number }>(
  `SELECT nodename AS name, nodeport AS port FROM pg_dist_node WHERE isactive ORDER BY groupid`,
)
const nodes = nodeRows.map((node, i) => {
  const at = new URL(url)
  const local = /^(\d+\.){3}\d+$|^localhost$/.test(node.name)
  // Docker's workers are known by their containers' names: reached through the ports citus.sh publishes.
  if (local) at.hostname = node.name
  at.port = String(local ? node.port : 9700 + i)
  return { label: at.port, client: new pg.Client({ connectionString: at.toString() }) }
})
for (const node of nodes) await node.client.connect()

const onEvery = (text: string) => Promise.all(nodes.map((node) => node.client.query(text)))
// Keep every pg_dist_transaction row (no recovery) and no distributed deadlock probe between the nodes.
await onEvery(`ALTER SYSTEM SET citus.recover_2pc_interval = -1`)
await onEvery(`ALTER SYSTEM SET citus.distributed_deadlock_detection_factor = -1`)
await onEvery(`SELECT pg_reload_conf()`)

/** What a node ran and started, as counters: read before and after each path. */
interface Counters {
  statements: Map<string, number>
  twoPhase: number
}
const OWN = /pg_stat_statements|pg_dist_transaction|pg_reload_conf|ALTER SYSTEM|pg_dist_node/
async function read(node: (typeof nodes)[number]): Promise<Counters> {
  const { rows } = await node.client.query<{ query: string; calls: string }>(
    `SELECT query, calls FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())`,
  )
  const statements = new Map<string, number>()
  for (const row of rows) if (!OWN.test(row.query)) statements.set(row.query, Number(row.calls))
  const { rows: prepared } = await node.client.query<{ n: string }>(`SELECT count(*) AS n FROM pg_dist_transaction`)
  return { statements, twoPhase: Number(prepared[0]?.n) }
}
const readAll = () => Promise.all(nodes.map(read))

/** A statement's kind, as the count prints it. */
function kindOf(query: string): string {
  const text = query.trim()
  if (/^PREPARE TRANSACTION/i.test(text)) return 'PREPARE received'
  if (/^COMMIT PREPARED/i.test(text)) return 'COMMIT PREPARED received'
  if (/^COPY/i.test(text)) return 'COPY'
  if (/assign_distributed_transaction_id/.test(text)) return 'distributed transaction joined'
  if (/catbird_delegated_/.test(text)) return 'delegated call'
  if (/^(BEGIN|COMMIT|ROLLBACK|SAVEPOINT|RELEASE|SET|RESET|SHOW|DEALLOCATE)/i.test(text)) return 'transaction control'
  return 'statement'
}

interface Counted {
  path: string
  hot: boolean
  twoPhase: number
  touched: number
}
const results: Counted[] = []

async function count(name: string, run: () => Promise<unknown>, hot: boolean): Promise<void> {
  captured.length = 0
  const before = await readAll()
  await run()
  const after = await readAll()
  const perNode = nodes.map((node, i) => {
    const was = before[i] as Counters
    const now = after[i] as Counters
    const kinds = new Map<string, number>()
    for (const [query, calls] of now.statements) {
      const ran = calls - (was.statements.get(query) ?? 0)
      if (ran > 0) kinds.set(kindOf(query), (kinds.get(kindOf(query)) ?? 0) + ran)
    }
    return { node: node.label, kinds, twoPhase: now.twoPhase - was.twoPhase }
  })
  // Each participant of a two-phase commit: a row in its initiator's pg_dist_transaction, a PREPARE TRANSACTION it ran.
  const twoPhase = perNode.reduce((sum, n) => sum + n.twoPhase, 0)
  const prepared = perNode.reduce((sum, n) => sum + (n.kinds.get('PREPARE received') ?? 0), 0)
  const touched = perNode.filter((n) => n.kinds.size > 0).length
  results.push({ path: name, hot, twoPhase: Math.max(twoPhase, prepared), touched })
  console.log(`\n## ${name}${hot ? '' : ' (not a hot path)'}`)
  console.log(`nodes touched: ${touched}; two-phase commit participants: ${twoPhase} started, ${prepared} prepared`)
  for (const n of perNode) {
    const kinds = [...n.kinds].map(([kind, calls]) => `${kind} ${calls}`).join(', ') || 'nothing'
    console.log(`- node ${n.node}: ${kinds}; 2PC started ${n.twoPhase}`)
  }
  // The plans, after the counts: EXPLAIN of a distributed statement itself runs on the workers.
  for (const query of captured) {
    if (/^(begin|commit|rollback|savepoint|release)/i.test(query.sql.trim())) continue
    const sent = (await database.delegated?.sent(query.sql, query.parameters)) ?? {
      text: query.sql,
      values: [...query.parameters],
    }
    const plan = await database.pool
      .query<{ 'QUERY PLAN': string }>(`EXPLAIN ${sent.text}`, sent.values)
      .then(({ rows }) => rows.map((r) => r['QUERY PLAN']))
      .catch((err: Error) => [`(not explained: ${err.message})`])
    const tasks = plan.filter((line) => /Task Count:|not explained/.test(line)).map((line) => line.trim())
    const text = (
      sent.text === query.sql ? sent.text : `${sent.text.replace(/\(\$.*/, '(...)')} <- ${query.sql}`
    ).replace(/\s+/g, ' ')
    console.log(`  - ${tasks.join(', ') || 'no distributed table'} | ${text.trim().slice(0, 110)}`)
  }
}

try {
  // Each delegated write makes its function at its first call: one pass, uncounted, then the counted one.
  await runWritePaths({ db, pool: database.pool }, (_name, run) => run().then(() => undefined))
  await runWritePaths({ db, pool: database.pool }, (name, run, opts) => count(name, run, opts?.hot ?? true))
} finally {
  await onEvery(`ALTER SYSTEM RESET citus.recover_2pc_interval`)
  await onEvery(`ALTER SYSTEM RESET citus.distributed_deadlock_detection_factor`)
  await onEvery(`SELECT pg_reload_conf()`)
  for (const node of nodes) await node.client.end()
  await database.close()
}

const hot = results.filter((r) => r.hot)
const failing = hot.filter((r) => r.twoPhase > 0)
console.log(`\n# Summary: ${hot.length} hot paths on ${nodes.length} nodes`)
console.log('| path | nodes touched | PREPARE TRANSACTION |\n|---|---|---|')
for (const r of results) console.log(`| ${r.path}${r.hot ? '' : ' (not hot)'} | ${r.touched} | ${r.twoPhase} |`)
if (failing.length > 0) {
  console.error(`\n${failing.length} hot path(s) committed in two phases: ${failing.map((r) => r.path).join('; ')}`)
  process.exit(1)
}
