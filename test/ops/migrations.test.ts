import { execFile } from 'node:child_process'
import path from 'node:path'
import { promisify } from 'node:util'
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createDatabase, type Database } from '../../src/db/index.js'
import { migrations } from '../../src/db/migrations/index.js'
import { MigrationError, migrateDown, migrateToLatest } from '../../src/db/migrator.js'
import { projectRoot } from '../../src/paths.js'
import { createConvo } from '../../src/services/convos.js'
import { convoIdOf } from '../../src/services/membership.js'
import { createTestDatabase, type TestDatabase } from '../helpers/index.js'

const run = promisify(execFile)
/** Distributed on a Citus cluster: what an operator upgrades (or rolls back). */
let testDb: TestDatabase
let database: Database
/**
 * One PostgreSQL, on a Citus host too: where each migration's data is taken
 * down to before it and up again, as far back as before the shard keys (006),
 * which no cluster ever ran without.
 */
let historyDb: TestDatabase
let history: Database

beforeAll(async () => {
  ;[testDb, historyDb] = await Promise.all([createTestDatabase(), createTestDatabase({ distributed: false })])
  database = createDatabase({ url: testDb.url, poolSize: 2 })
  history = createDatabase({ url: historyDb.url, poolSize: 2 })
})
afterAll(async () => {
  await Promise.all([database?.close(), history?.close()])
  await Promise.all([testDb?.drop(), historyDb?.drop()])
})

const tables = async () =>
  (
    await sql<{
      name: string
    }>`SELECT tablename AS name FROM pg_tables WHERE schemaname = 'public' AND tablename NOT LIKE 'kysely%' ORDER BY 1`.execute(
      database.db,
    )
  ).rows.map((r) => r.name)

/** The migrations in the order they run. */
const migrationNames = Object.keys(migrations)

/** Goes down one migration at a time, newest first, through `oldest`, checking that each step undoes the one expected. */
async function downThrough(oldest: string): Promise<void> {
  expect(migrationNames).toContain(oldest)
  for (const name of migrationNames.slice(migrationNames.indexOf(oldest)).reverse()) {
    expect(await migrateDown(history.db)).toEqual([name])
  }
}

const migrateCli = (command: string) =>
  run(process.execPath, ['--import', 'tsx', path.join(projectRoot, 'src/db/migrate-cli.ts'), command], {
    cwd: projectRoot,
    env: { PATH: process.env.PATH ?? '', DATABASE_URL: testDb.url },
  })

describe('migrations', () => {
  it('go down and up again, leaving the same schema (the latest two: a rollback, on a cluster too)', async () => {
    const before = await tables()
    expect(before).toContain('message')
    const down = [...(await migrateDown(database.db)), ...(await migrateDown(database.db))]
    expect(down).toEqual(migrationNames.slice(-2).reverse())
    expect(await tables()).not.toContain('convo_policy')
    await migrateToLatest(database.db)
    expect(await tables()).toEqual(before)
  })

  it('010 makes each creator the admin of its conversation, and the longest-standing member where the creator left', async () => {
    await downThrough('010_administration')
    await sql`
      INSERT INTO convo (id, group_id, creator_did, cipher_suite, created_at)
        VALUES ('m10kept', 'cd01', 'did:plc:creator', 's', '2025-01-01T00:00:00Z'),
               ('m10left', 'cd02', 'did:plc:creator', 's', '2025-01-01T00:00:00Z');
      INSERT INTO member (convo_id, did, joined_at, left_at) VALUES
        ('m10kept', 'did:plc:creator', '2025-01-01T00:00:00Z', NULL),
        ('m10kept', 'did:plc:other', '2025-01-02T00:00:00Z', NULL),
        ('m10left', 'did:plc:creator', '2025-01-01T00:00:00Z', '2025-02-01T00:00:00Z'),
        ('m10left', 'did:plc:late', '2025-01-03T00:00:00Z', NULL),
        ('m10left', 'did:plc:early', '2025-01-02T00:00:00Z', NULL);`.execute(history.db)
    await migrateToLatest(history.db)
    const { rows } = await sql<{ convo_id: string; did: string; role: string; promoted_by: string | null }>`
      SELECT convo_id, did, role, promoted_by FROM member WHERE convo_id LIKE 'm10%' ORDER BY convo_id, did`.execute(
      history.db,
    )
    expect(rows.map((r) => [r.convo_id, r.did, r.role, r.promoted_by])).toEqual([
      ['m10kept', 'did:plc:creator', 'admin', null],
      ['m10kept', 'did:plc:other', 'member', null],
      ['m10left', 'did:plc:creator', 'member', null],
      ['m10left', 'did:plc:early', 'admin', null],
      ['m10left', 'did:plc:late', 'member', null],
    ])
    const retained = await sql<{ same: boolean }>`
      SELECT retained_from_at = created_at AS same FROM convo WHERE id LIKE 'm10%'`.execute(history.db)
    expect(retained.rows).toEqual([{ same: true }, { same: true }])
    await sql`DELETE FROM convo WHERE id LIKE 'm10%'`.execute(history.db)
  })

  it('005 keeps key packages regular, and going down drops last-resort ones rather than make them regular', async () => {
    await sql`INSERT INTO key_package (owner_did, cipher_suite, data, data_sha256, ref, expires_at, last_resort)
      VALUES ('did:plc:lr', 's', '\\x11', sha256('\\x11'), '\\x21', now() + interval '1 day', true),
             ('did:plc:lr', 's', '\\x12', sha256('\\x12'), '\\x22', now() + interval '1 day', false)`.execute(
      history.db,
    )
    // One last-resort package per owner and cipher suite.
    await expect(
      sql`INSERT INTO key_package (owner_did, cipher_suite, data, data_sha256, ref, expires_at, last_resort)
          VALUES ('did:plc:lr', 's', '\\x13', sha256('\\x13'), '\\x23', now() + interval '1 day', true)`.execute(
        history.db,
      ),
    ).rejects.toThrow(/key_package_last_resort_key/)
    await downThrough('005_recovery')
    const { rows } = await sql<{ data: Buffer }>`SELECT data FROM key_package WHERE owner_did = 'did:plc:lr'`.execute(
      history.db,
    )
    expect(rows.map((r) => r.data.toString('hex'))).toEqual(['12'])
    await migrateToLatest(history.db)
    const after = await sql<{
      last_resort: boolean
    }>`SELECT last_resort FROM key_package WHERE owner_did = 'did:plc:lr'`.execute(history.db)
    expect(after.rows).toEqual([{ last_resort: false }])
  })

  it('003 drops the key packages no Welcome could name, keeps the consumed ones, and requires a ref from then on', async () => {
    await downThrough('003_mls_facts')
    await sql`INSERT INTO key_package (owner_did, cipher_suite, data, data_sha256, expires_at, consumed_at, consumed_by)
      VALUES ('did:plc:old', 's', '\\x01', sha256('\\x01'), now() + interval '1 day', NULL, NULL),
             ('did:plc:old', 's', '\\x02', sha256('\\x02'), now() + interval '1 day', now(), 'did:plc:adder')`.execute(
      history.db,
    )
    await migrateToLatest(history.db)
    const { rows } = await sql<{
      consumed_by: string
    }>`SELECT consumed_by FROM key_package WHERE owner_did = 'did:plc:old'`.execute(history.db)
    expect(rows).toEqual([{ consumed_by: 'did:plc:adder' }])
    await expect(
      sql`INSERT INTO key_package (owner_did, cipher_suite, data, data_sha256, expires_at)
          VALUES ('did:plc:old', 's', '\\x03', sha256('\\x03'), now() + interval '1 day')`.execute(history.db),
    ).rejects.toThrow(/key_package_ref_check/)
  })

  it('004 files each idempotency record under its shard: the conversation, the group of a created one, or the publisher', async () => {
    await downThrough('004_idempotency_shard_key')
    await sql`
      INSERT INTO convo (id, group_id, creator_did, cipher_suite) VALUES ('m4convo', 'ab01', 'did:plc:a', 's');
      INSERT INTO message (id, convo_id, seq, sender_did, epoch, ciphertext)
        VALUES ('00000000-0000-4000-8000-000000000004', 'm4convo', 1, 'did:plc:a', 0, '\\x01');
      INSERT INTO idempotency_key (scope_hash, caller_did, nsid, fingerprint, status, response, expires_at) VALUES
        ('\\x01', 'did:plc:a', 'blue.catbird.mls.sendMessage', '\\x00', 200,
         '{"messageId": "00000000-0000-4000-8000-000000000004", "receivedAt": "2026-01-01T00:00:00.000Z"}', now() + interval '1 day'),
        ('\\x02', 'did:plc:a', 'blue.catbird.mls.createConvo', '\\x00', 200, '{"id": "m4convo", "groupId": "AB01"}', now() + interval '1 day'),
        ('\\x03', 'did:plc:a', 'blue.catbird.mls.publishKeyPackage', '\\x00', 200, '{"available": 3}', now() + interval '1 day'),
        ('\\x04', 'did:plc:a', 'blue.catbird.mls.addMembers', '\\x00', 200, '{"success": true, "newEpoch": 2}', now() + interval '1 day');
    `.execute(history.db)
    await migrateToLatest(history.db)
    const { rows } = await sql<{ scope: string; shard_key: string; response: unknown }>`
      SELECT encode(scope_hash, 'hex') AS scope, shard_key, response FROM idempotency_key ORDER BY scope_hash`.execute(
      history.db,
    )
    expect(rows).toEqual([
      {
        scope: '01',
        shard_key: 'm4convo',
        response: { messageId: '00000000-0000-4000-8000-000000000004', receivedAt: '2026-01-01T00:00:00.000Z' },
      },
      // Then 006 moves it to the shard of the id derived from the group id.
      { scope: '02', shard_key: convoIdOf('ab01'), response: { id: 'm4convo', groupId: 'AB01' } },
      { scope: '03', shard_key: 'did:plc:a', response: { available: 3 } },
    ])
    await sql`DELETE FROM idempotency_key; DELETE FROM convo WHERE id = 'm4convo'`.execute(history.db)
  })

  it("007 keeps what each Welcome used: admitted in its conversation, reserved for it on the owner's shard", async () => {
    await downThrough('007_admitted_key_packages')
    await sql`
      INSERT INTO convo (id, group_id, creator_did, cipher_suite) VALUES ('m7convo', 'ab07', 'did:plc:a', 's');
      INSERT INTO key_package (owner_did, cipher_suite, data, data_sha256, ref, expires_at, consumed_at, consumed_by, used_convo_id, used_epoch)
        VALUES ('did:plc:b', 's', '\\x71', sha256('\\x71'), '\\x81', now() + interval '1 day', now(), 'did:plc:a', 'm7convo', 3);
    `.execute(history.db)
    await migrateToLatest(history.db)
    const admitted =
      await sql`SELECT convo_id, encode(ref, 'hex') AS ref, owner_did, epoch FROM admitted_key_package`.execute(
        history.db,
      )
    expect(admitted.rows).toEqual([{ convo_id: 'm7convo', ref: '81', owner_did: 'did:plc:b', epoch: 3 }])
    const reserved = await sql`SELECT reserved_convo_id FROM key_package WHERE owner_did = 'did:plc:b'`.execute(
      history.db,
    )
    expect(reserved.rows).toEqual([{ reserved_convo_id: 'm7convo' }])
    // Going down, a reservation no Welcome used is no use.
    await sql`INSERT INTO key_package (owner_did, cipher_suite, data, data_sha256, ref, expires_at, consumed_at, consumed_by, reserved_convo_id)
      VALUES ('did:plc:b', 's', '\\x72', sha256('\\x72'), '\\x82', now() + interval '1 day', now(), 'did:plc:a', 'm7convo')`.execute(
      history.db,
    )
    await downThrough('007_admitted_key_packages')
    const used = await sql`SELECT encode(ref, 'hex') AS ref, used_convo_id, used_epoch FROM key_package
      WHERE owner_did = 'did:plc:b' ORDER BY ref`.execute(history.db)
    expect(used.rows).toEqual([
      { ref: '81', used_convo_id: 'm7convo', used_epoch: 3 },
      { ref: '82', used_convo_id: null, used_epoch: null },
    ])
    await migrateToLatest(history.db)
    await sql`DELETE FROM key_package WHERE owner_did = 'did:plc:b'; DELETE FROM convo WHERE id = 'm7convo'`.execute(
      history.db,
    )
  })

  it('006 keeps the group id of a conversation created before it taken, and files its createConvo record under the derived id', async () => {
    await downThrough('006_shard_keys')
    await sql`
      INSERT INTO convo (id, group_id, creator_did, cipher_suite) VALUES ('m6convoabcdef', 'AbCd', 'did:plc:a', 's');
      INSERT INTO idempotency_key (shard_key, scope_hash, caller_did, nsid, fingerprint, status, response, expires_at) VALUES
        ('abcd', '\\x06', 'did:plc:a', 'blue.catbird.mls.createConvo', '\\x00', 200, '{"id": "m6convoabcdef"}', now() + interval '1 day');
    `.execute(history.db)
    await migrateToLatest(history.db)
    const { rows } = await sql<{
      shard_key: string
    }>`SELECT shard_key FROM idempotency_key WHERE scope_hash = '\\x06'`.execute(history.db)
    expect(rows).toEqual([{ shard_key: convoIdOf('abcd') }])
    const create = { creator: 'did:plc:b', cipherSuite: 's', initialMembers: [], welcomeRetentionDays: 1 }
    await expect(createConvo(history.db, { ...create, groupId: 'ABCD' })).rejects.toThrow(/already exists/)
    // A new group's conversation has the derived id, and creating it again is a primary-key conflict.
    expect((await createConvo(history.db, { ...create, groupId: 'ef01' })).convo.id).toBe(convoIdOf('ef01'))
    await expect(createConvo(history.db, { ...create, groupId: 'EF01' })).rejects.toThrow(/already exists/)
    await sql`DELETE FROM idempotency_key; DELETE FROM convo`.execute(history.db)
  })

  it('are run and reported by `npm run migrate`', async () => {
    const status = await migrateCli('status')
    expect(status.stdout).toMatch(/applied .* 001_init/)
    expect((await migrateCli('up')).stdout).toContain('already up to date')
    await expect(migrateCli('sideways')).rejects.toMatchObject({ stderr: expect.stringContaining('usage') })
  })

  it('refuse a database that a newer version of the server has migrated', async () => {
    await sql`INSERT INTO kysely_migration (name, timestamp) VALUES ('999_from_the_future', now()::text)`.execute(
      database.db,
    )
    try {
      await expect(migrateToLatest(database.db)).rejects.toThrow(MigrationError)
      await expect(migrateToLatest(database.db)).rejects.toThrow(/999_from_the_future/)
    } finally {
      await sql`DELETE FROM kysely_migration WHERE name = '999_from_the_future'`.execute(database.db)
    }
  })
})
