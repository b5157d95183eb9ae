import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createDatabase, type Database } from '../../src/db/index.js'
import { onShard } from '../../src/db/delegated.js'
import { createTestDatabase, type TestDatabase } from '../helpers/index.js'
import { compareDelegatedWrites, type ComparedWrite } from '../helpers/compare-delegated.js'
import { runWritePaths } from '../helpers/write-paths.js'

// Each delegated write is written once, as steps (src/db/steps.ts), and made
// two ways: the statement plain PostgreSQL runs, and the function a Citus
// node runs. Here both run, on plain PostgreSQL (on a Citus host too), for every write path.
let testDb: TestDatabase
let database: Database
const compared: ComparedWrite[] = []
beforeAll(async () => {
  testDb = await createTestDatabase({ distributed: false })
  database = createDatabase({ url: testDb.directUrl, poolSize: 4, delegatedWrites: true })
  database.pool.on('connect', (client) => compareDelegatedWrites(client, compared))
})
afterAll(async () => {
  await database?.close()
  await testDb?.drop()
})

describe('delegated writes, written once as steps', () => {
  it('answer and write the same as their statement and as their function, in every shape', async () => {
    const paths: string[] = []
    await runWritePaths(database, async (name, run) => {
      paths.push(name)
      await run()
    })
    expect(paths.length).toBeGreaterThan(30)
    expect(compared.filter((run) => run.difference)).toEqual([])
    // Every shape of every delegated write was compared.
    expect([...new Set(compared.map((run) => run.write))].sort()).toEqual([
      'change_commit',
      'change_commit_admit',
      'change_commit_join_admit',
      'change_commit_leave',
      'change_commit_pushed_admit_welcome_pushed',
      'change_touch_admit_welcome_pushed',
      'change_touch_leave',
      'claim_key_package',
      'claim_key_package_of_device',
      'convo_events',
      'create_convo',
      'create_convo_with_group_info',
      'publish_key_package',
      'publish_key_package_keyed',
      'publish_key_packages',
      'publish_last_resort',
      'publish_last_resort_keyed',
      'register_device',
      'store_commit',
      'store_commit_keyed',
      'store_commit_pushed',
      'store_commit_with_group_info',
      'store_message',
      'store_message_keyed',
      'store_message_named',
      'store_message_named_keyed',
      'store_message_pushed',
      'store_message_pushed_keyed',
    ])
    // Each write's function is made once, outside the requests' transactions, and called with one argument per value.
    const { rows } = await sql<{ args: number; distinct: number }>`
      SELECT pronargs AS args, (SELECT count(DISTINCT a) FROM unnest(proargnames) a)::int AS distinct
      FROM pg_proc WHERE proname LIKE 'catbird_delegated_%'`.execute(database.db)
    expect(rows.length).toBe(28)
    expect(rows.every((row) => row.args === row.distinct)).toBe(true)
  })

  it('refuses steps that could not run on one node, when the write is made', () => {
    const make = (name: string, steps: Parameters<typeof onShard<{ k: string }, unknown>>[2]) => () =>
      onShard<{ k: string }, unknown>(name, { shardKey: 'k' }, steps)
    const result = { columns: { one: 'int' }, rows: [{ values: { one: sql`1` } }] }
    expect(
      make('publish_bad_use', (v) => ({
        steps: [
          {
            name: 'many',
            insert: 't',
            each: { alias: 'r', rows: sql`unnest(${v.k}::text[]) AS r(x)` },
            values: { x: sql`r.x` },
            returning: sql`x`,
          },
          { name: 'later', update: 't', set: sql`x = many.x`, where: sql`k = ${v.k}`, uses: ['many'] },
        ],
        result,
      })),
    ).toThrow('later uses many, which writes several rows')
    expect(
      make('publish_bad_order', (v) => ({
        steps: [{ name: 'first', update: 't', set: sql`x = 1`, where: sql`k = ${v.k}`, after: ['second'] }],
        result,
      })),
    ).toThrow('first names second, which is no earlier step')
    expect(
      make('unlisted', (v) => ({ steps: [{ name: 'a', select: sql`1`, where: sql`${v.k} = ''` }], result })),
    ).toThrow('not listed in DELEGATED_WRITES')
  })
})
