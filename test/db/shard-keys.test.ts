import { sql } from 'kysely'
import { readFile } from 'node:fs/promises'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createDatabase, type Database } from '../../src/db/index.js'
import { createTestDatabase, type TestDatabase } from '../helpers/index.js'
import { SHARD_COLUMNS } from './shard-columns.js'

let testDb: TestDatabase
let database: Database

beforeAll(async () => {
  testDb = await createTestDatabase()
  database = createDatabase({ url: testDb.url, poolSize: 1 })
})
afterAll(async () => {
  await database?.close()
  await testDb?.drop()
})

/** Tables every node holds whole (Citus reference tables): never written by a request. */
const REFERENCE_TABLES = ['convo_group_before_006', 'account_takedown']

describe('shard keys: every key holds its shard key', () => {
  it('every table is distributed by a shard key or is a reference table', async () => {
    const { rows } = await sql<{ name: string }>`
      SELECT tablename AS name FROM pg_tables WHERE schemaname = 'public' AND tablename NOT LIKE 'kysely%' ORDER BY 1`.execute(
      database.db,
    )
    expect(rows.map((r) => r.name)).toEqual([...Object.keys(SHARD_COLUMNS), ...REFERENCE_TABLES].sort())
  })

  it('scripts/citus-distribute.sql and the operating guide distribute every table by its shard key', async () => {
    for (const file of ['scripts/citus-distribute.sql', 'docs/operating.md']) {
      const text = (await readFile(new URL(`../../${file}`, import.meta.url), 'utf8')).replace(/--.*$/gm, '')
      const distributed: Record<string, string> = {}
      for (const [, table, column] of text.matchAll(/create_distributed_table\('(\w+)', '(\w+)'/g)) {
        distributed[table as string] = column as string
      }
      for (const [, column, tables] of text.matchAll(/create_distributed_table\(t, '(\w+)'[^;]*?ARRAY\[([^\]]*)\]/g)) {
        for (const table of (tables as string).match(/\w+/g) ?? []) distributed[table] = column as string
      }
      const references = [...text.matchAll(/create_reference_table\('(\w+)'\)/g)].map((m) => m[1])
      expect([file, distributed]).toEqual([file, SHARD_COLUMNS])
      expect([file, references.sort()]).toEqual([file, [...REFERENCE_TABLES].sort()])
    }
  })

  it('every primary key, unique constraint, unique index and foreign key of a distributed table holds its shard key', async () => {
    const { rows } = await sql<{
      table: string
      name: string
      kind: string
      columns: string[]
      referenced: string | null
      referenced_columns: string[] | null
    }>`
      SELECT c.relname AS table, k.conname AS name, k.contype AS kind,
             ARRAY(SELECT a.attname::text FROM unnest(k.conkey) WITH ORDINALITY AS n(num, pos) JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = n.num ORDER BY n.pos) AS columns,
             r.relname AS referenced,
             CASE WHEN k.contype = 'f' THEN ARRAY(SELECT a.attname::text FROM unnest(k.confkey) WITH ORDINALITY AS n(num, pos) JOIN pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = n.num ORDER BY n.pos) END AS referenced_columns
      FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid LEFT JOIN pg_class r ON r.oid = k.confrelid
      WHERE k.contype IN ('p', 'u', 'f') AND c.relnamespace = 'public'::regnamespace
      UNION ALL
      -- Unique indexes that back no constraint (CREATE UNIQUE INDEX).
      SELECT c.relname, i.relname, 'i',
             ARRAY(SELECT a.attname::text FROM unnest(x.indkey) WITH ORDINALITY AS n(num, pos) JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = n.num ORDER BY n.pos), NULL, NULL
      FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class c ON c.oid = x.indrelid
      WHERE x.indisunique AND c.relnamespace = 'public'::regnamespace
        AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = x.indexrelid)`.execute(database.db)
    const distributed = rows.filter((r) => r.table in SHARD_COLUMNS)
    expect(distributed.length).toBeGreaterThan(15)
    const offenders = distributed.flatMap((r) => {
      const shard = SHARD_COLUMNS[r.table] as string
      if (!r.columns.includes(shard)) return [`${r.table}.${r.name} (${r.columns.join(', ')}) lacks ${shard}`]
      if (r.kind !== 'f') return []
      // A foreign key stays on one shard when it maps the shard key onto the referenced table's.
      const target = SHARD_COLUMNS[r.referenced as string]
      const at = r.columns.indexOf(shard)
      return r.referenced_columns?.[at] === target
        ? []
        : [`${r.table}.${r.name} does not map ${shard} onto ${r.referenced}.${target}`]
    })
    expect(offenders).toEqual([])
  })
})
