import pg from 'pg'
import type { TestUser } from '../../test/helpers/index.js'
import { observeQueries, type SentQuery } from '../queries.js'
import { atMost, details, type Section } from '../report.js'
import type { Bench } from '../setup.js'
import { PAGE, type Convo } from '../workload.js'

interface Explained {
  statement: string
  sql: string
  plan: string
}

class RolledBack extends Error {}

/**
 * The statements getMessages and sendMessage send, captured from the
 * services themselves on the large database, and explained there with the
 * same parameters.
 */
async function explainStatements(bench: Bench): Promise<Explained[]> {
  const { dist, large } = bench
  const database = dist.createDatabase({ url: large.url, poolSize: 1 })
  const sent: SentQuery[] = []
  observeQueries(database.pool, (query) => sent.push(query))
  const convo = large.load.convos[0] as Convo
  const did = (convo.members[0] as TestUser).did
  try {
    await dist.listMessages(database.db, { convoId: convo.id, did, limit: PAGE })
    const [membership, page] = sent.splice(0)
    // Captured in a transaction rolled back: its message id (made by the server) stays free for the EXPLAIN ANALYZE below.
    await database.db
      .transaction()
      .execute(async (trx) => {
        await dist.sendMessage(trx, { ...large.load.sendArgs(convo), sender: did })
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
    const client = new pg.Client(large.url)
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

const hasSeqScan = (x: Explained) => /Seq Scan/.test(x.plan)

/** EXPLAIN (ANALYZE, BUFFERS) of the hot statements on the large table: each folded, named by its execution time. */
export async function explain(bench: Bench): Promise<Section> {
  const explained = await explainStatements(bench)
  return {
    targets: [atMost('8. sequential scans in the EXPLAIN plans below', explained.filter(hasSeqScan).length, 0, 0)],
    markdown: [
      '#### EXPLAIN (ANALYZE, BUFFERS), large table',
      '',
      'The statements the services send, captured from a service call and explained with the same parameters (sendMessage inside a rolled-back transaction).',
      '',
      ...explained.flatMap((x) => {
        const time = /Execution Time: (.*)$/m.exec(x.plan)?.[1] ?? 'no execution time'
        const scan = hasSeqScan(x) ? 'a sequential scan' : 'no sequential scan'
        return details(`${x.statement}: ${time}, ${scan}`, ['```sql', x.sql.trim(), '```', '', '```', x.plan, '```'])
      }),
    ],
  }
}
