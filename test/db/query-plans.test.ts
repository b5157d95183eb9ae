import { createHash, randomUUID } from 'node:crypto'
import { Kysely, PostgresDialect, sql, type CompiledQuery } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createDatabase, type Database } from '../../src/db/index.js'
import type { DatabaseSchema } from '../../src/db/schema.js'
import { deleteExpiredIdempotencyKeys } from '../../src/idempotency/claim.js'
import { listCommits, sendCommit } from '../../src/services/commits.js'
import { reserveWelcome } from '../../src/services/admission.js'
import { createConvo, listConvos } from '../../src/services/convos.js'
import { convoIdOf } from '../../src/services/membership.js'
import {
  highestEventId,
  lowestEventId,
  memberships,
  readEventRefs,
  readEvents,
  replayEvents,
} from '../../src/services/eventLog.js'
import { addMembers, removeMember } from '../../src/services/members.js'
import { fetchGroupInfo, putGroupInfo } from '../../src/services/groupInfo.js'
import {
  currentGroupIds,
  deleteDevice,
  deviceState,
  expectedConversations,
  listDevices,
  registerDevice,
  requireDevice,
  syncDeviceKeyPackages,
  type Device,
} from '../../src/services/devices.js'
import {
  claimKeyPackages,
  keyPackageHistory,
  keyPackageStats,
  keyPackageStatus,
  publishKeyPackage,
  publishKeyPackageBatch,
} from '../../src/services/keyPackages.js'
import { optIn, optInStatuses, optOut } from '../../src/services/optOuts.js'
import { registerPushToken, unregisterPushToken } from '../../src/services/pushTokens.js'
import { listMessages, sendMessage } from '../../src/services/messages.js'
import { conversationsDue, purgedUpTo, purgeOldMessages, purgeOldModeration } from '../../src/services/retention.js'
import { requireMember } from '../../src/services/membership.js'
import { confirmWelcome, fetchWelcome, sweepWelcomes } from '../../src/services/welcomes.js'
import { createTestDatabase, type TestDatabase } from '../helpers/index.js'
import { SHARD_COLUMNS } from './shard-columns.js'

let testDb: TestDatabase
let database: Database
const captured: CompiledQuery[] = []
let traced: Kysely<DatabaseSchema>

// Enough rows that a sequential scan would be a real cost, and the planner knows it. The plans are one
// PostgreSQL's, on a Citus host too: a cluster's (tasks, nodes, two-phase commits) are scripts/citus.sh explain's.
beforeAll(async () => {
  testDb = await createTestDatabase({ distributed: false })
  database = createDatabase({ url: testDb.url, poolSize: 4 })
  const db = database.db
  await sql`
    INSERT INTO convo (id, group_id, creator_did, cipher_suite, last_seq, epoch)
      SELECT 'c' || i, md5(i::text), 'did:plc:u' || (i % 500), 's', 100, CASE WHEN i <= 2000 THEN 10 ELSE 0 END
      FROM generate_series(1, 20000) i;
    INSERT INTO member (convo_id, did, joined_seq)
      SELECT 'c' || i, 'did:plc:u' || ((i + k) % 5000), 0 FROM generate_series(1, 20000) i, generate_series(0, 4) k
      ON CONFLICT DO NOTHING;
    INSERT INTO message (id, convo_id, seq, sender_did, epoch, ciphertext)
      SELECT gen_random_uuid(), 'c' || i, s, 'did:plc:u' || (i % 500), 0, '\\x00' FROM generate_series(1, 20000) i, generate_series(1, 10) s;
    INSERT INTO commit (convo_id, epoch, sender_did, data, seq)
      SELECT 'c' || i, e, 'did:plc:u1', '\\x00', e + 1 FROM generate_series(1, 2000) i, generate_series(0, 9) e;
    INSERT INTO key_package (owner_did, cipher_suite, data, data_sha256, ref, consumed_at, consumed_by, expires_at)
      SELECT 'did:plc:u' || (i % 500), 's', int4send(i), sha256(int4send(i)), sha256(int4send(-i)),
             CASE WHEN i % 2 = 0 THEN now() END, CASE WHEN i % 2 = 0 THEN 'did:plc:u7' END, now() + interval '1 day'
      FROM generate_series(1, 50000) i;
    INSERT INTO welcome (convo_id, data) SELECT 'c' || i, '\\x00' FROM generate_series(1, 2000) i;
    INSERT INTO welcome_delivery (convo_id, recipient_did, welcome_id, expires_at)
      SELECT w.convo_id, 'did:plc:r' || k, w.id, now() + interval '1 day' FROM welcome w, generate_series(1, 10) k;
    INSERT INTO idempotency_key (shard_key, scope_hash, caller_did, nsid, fingerprint, status, response, expires_at)
      SELECT 'c' || (i % 20000), sha256(int4send(i)), 'did:plc:u1', 'n', '\\x00', 200, '{}', now() + interval '1 day' FROM generate_series(1, 50000) i;
    -- Skew: one owner with far more key packages than the rest, one conversation with far more messages.
    INSERT INTO key_package (owner_did, cipher_suite, data, data_sha256, ref, expires_at)
      SELECT 'did:plc:hot', 's', int4send(100000 + i), sha256(int4send(100000 + i)), sha256(int4send(-100000 - i)), now() + interval '1 day'
      FROM generate_series(1, 30000) i;
    INSERT INTO message (id, convo_id, seq, sender_did, epoch, ciphertext)
      SELECT gen_random_uuid(), 'c7', 10 + s, 'did:plc:u7', 0, '\\x00' FROM generate_series(1, 30000) s;
    UPDATE convo SET last_seq = 30010 WHERE id = 'c7';
    INSERT INTO group_info (convo_id, epoch, data, stored_by) SELECT 'c' || i, 10, '\\x00', 'did:plc:u1' FROM generate_series(1, 2000) i;
    -- Last-resort packages (refs sha256(int4send(-200000 - j))), each handed out to a few callers.
    INSERT INTO key_package (owner_did, cipher_suite, data, data_sha256, ref, expires_at, last_resort)
      SELECT 'did:plc:lr' || j, 's', int4send(200000 + j), sha256(int4send(200000 + j)), sha256(int4send(-200000 - j)), now() + interval '1 day', true
      FROM generate_series(1, 5000) j;
    INSERT INTO last_resort_handout (owner_did, ref, claimed_by)
      SELECT 'did:plc:lr' || j, sha256(int4send(-200000 - j)), 'did:plc:u' || k FROM generate_series(1, 5000) j, generate_series(1, 5) k;
    ANALYZE;
  `.execute(db)
  traced = new Kysely<DatabaseSchema>({
    // A pool of the server's making: bigint columns are numbers, as the services expect.
    dialect: new PostgresDialect({ pool: createDatabase({ url: testDb.url, poolSize: 2 }).pool }),
    log: (event) => {
      if (event.level === 'query') captured.push(event.query)
    },
  })
})
afterAll(async () => {
  await traced?.destroy()
  await database?.close()
  await testDb?.drop()
})

/** The calls of devices and key packages per device, as `user` makes them (each must succeed to be seen). */
function deviceCalls(user: string): Array<() => Promise<unknown>> {
  const signatureKey = new Uint8Array(32).fill(7)
  const item = (n: number) => ({
    cipherSuite: 's',
    data: new Uint8Array([1, 2, n]),
    ref: createHash('sha256').update(`device package ${n}`).digest(),
    signatureKey,
    expiresAt: new Date(Date.now() + 1e6),
  })
  let device: Device | undefined
  const named = async () => (device = await requireDevice(traced, user, 'UUID-7'))
  return [
    () =>
      registerDevice(traced, {
        user,
        deviceUuid: 'UUID-7',
        name: 'phone',
        signaturePublicKey: signatureKey,
        mlsKey: signatureKey,
        keyPackages: [{ ...item(1), lastResort: false }],
        maxDevices: 10,
        maxKeyPackages: 1000,
      }),
    named,
    () =>
      publishKeyPackageBatch(traced, {
        owner: user,
        maxPerUser: 1000,
        items: [item(2), { ...item(3), key: { scope: Buffer.alloc(32, 3), fingerprint: Buffer.alloc(32, 4) } }],
        nsid: 'n',
        ttlSeconds: 60,
      }),
    () => claimKeyPackages(traced, { dids: [user], claimedBy: 'did:plc:u1' }),
    () => listDevices(traced, user),
    () => currentGroupIds(traced, user),
    async () => expectedConversations(traced, { user, device: await named() }),
    async () => deviceState(traced, { user, device: await named(), target: 10 }),
    () => deviceState(traced, { user, device: undefined, target: 10 }),
    () => keyPackageStatus(traced, { owner: user, limit: 20, cursor: '1700000000000000_5' }),
    () => keyPackageHistory(traced, { owner: user, limit: 20, cursor: undefined }),
    // A Welcome to c7 named one of its packages: the sync and the deletion withdraw it.
    () =>
      sql`UPDATE key_package SET reserved_convo_id = 'c7' WHERE owner_did = ${user} AND consumed_at IS NOT NULL AND device_id IS NOT NULL`.execute(
        traced,
      ),
    () => syncDeviceKeyPackages(traced, { user, device: device!, held: [item(2).ref], welcomeRetentionDays: 14 }),
    () => deleteDevice(traced, { user, device: device!, welcomeRetentionDays: 14 }),
    () => optInStatuses(traced, [user, 'did:plc:u8', 'did:plc:hot']),
    () => optOut(traced, 'did:plc:u9'),
    () => optIn(traced, 'did:plc:u9'),
  ]
}

/**
 * The per-request statements of push, as `user` (a member of `convoId`) makes them: a device with a
 * token, a message it sends from that device (queued to be pushed), the token forgotten.
 */
function pushCalls(user: string, convoId: string, groupId: string): Array<() => Promise<unknown>> {
  const key = new Uint8Array(32).fill(9)
  const deviceId = async () => (await requireDevice(traced, user, 'UUID-9')).deviceId
  // A send that queues pushes, from the sender's device named either way.
  const pushedSend = (senderDevice: string) =>
    sendMessage(traced, {
      convoId,
      sender: user,
      groupId,
      epoch: 10,
      ciphertext: new Uint8Array([1]),
      push: { commits: false },
      senderDevice,
    })
  return [
    () =>
      registerDevice(traced, {
        user,
        deviceUuid: 'UUID-9',
        name: 'phone',
        signaturePublicKey: key,
        mlsKey: key,
        keyPackages: [
          {
            cipherSuite: 's',
            data: new Uint8Array([9, 1]),
            ref: createHash('sha256').update('push device package').digest(),
            signatureKey: key,
            expiresAt: new Date(Date.now() + 1e6),
            lastResort: false,
          },
        ],
        maxDevices: 10,
        maxKeyPackages: 1000,
      }),
    async () => registerPushToken(traced, { did: user, deviceId: await deviceId(), token: 'ab'.repeat(32) }),
    async () => pushedSend(`${user}#${await deviceId()}`),
    () => pushedSend('UUID-9'),
    async () => unregisterPushToken(traced, { did: user, deviceId: await deviceId() }),
  ]
}

const BIG_TABLES = [
  'message',
  'member',
  'key_package',
  'commit',
  'welcome_delivery',
  'idempotency_key',
  'convo',
  'group_info',
  'last_resort_handout',
]

function seqScans(plan: unknown, found: string[] = []): string[] {
  if (Array.isArray(plan)) plan.forEach((p) => seqScans(p, found))
  else if (plan && typeof plan === 'object') {
    const node = plan as Record<string, unknown>
    if (node['Node Type'] === 'Seq Scan' && BIG_TABLES.includes(String(node['Relation Name']))) {
      found.push(String(node['Relation Name']))
    }
    Object.values(node).forEach((v) => seqScans(v, found))
  }
  return found
}

/** A parameter as PostgreSQL reads it from text: what EXECUTE takes (it binds no parameters of its own). */
function asText(value: unknown): string | null {
  if (value === null || value === undefined) return null
  if (value instanceof Uint8Array) return `\\x${Buffer.from(value).toString('hex')}`
  if (value instanceof Date) return value.toISOString()
  if (Array.isArray(value)) {
    const element = (e: unknown) => {
      const text = asText(e)
      return text === null ? 'NULL' : `"${text.replace(/[\\"]/g, (c) => `\\${c}`)}"`
    }
    return `{${value.map(element).join(',')}}`
  }
  return typeof value === 'object' ? JSON.stringify(value) : String(value)
}

/**
 * The plan a prepared statement gets for any values (after five runs), with its
 * parameters as `$n`. Forced and explained by EXECUTE, as PostgreSQL 15 has no
 * EXPLAIN (GENERIC_PLAN).
 */
async function genericPlan(text: string, parameters: readonly unknown[]): Promise<unknown> {
  const client = await database.pool.connect()
  try {
    await client.query('SET plan_cache_mode = force_generic_plan')
    await client.query(`PREPARE generic AS ${text}`)
    const values = parameters.map(asText).map((v) => (v === null ? 'NULL' : client.escapeLiteral(v)))
    const { rows } = await client.query<{ 'QUERY PLAN': unknown }>(
      `EXPLAIN (FORMAT JSON) EXECUTE generic${values.length ? `(${values.join(', ')})` : ''}`,
    )
    await client.query('DEALLOCATE generic; RESET plan_cache_mode')
    client.release()
    return rows[0]!['QUERY PLAN']
  } catch (err) {
    // Its session may hold the statement and the setting: closed, not handed out again (and the error is the first one).
    client.release(err instanceof Error ? err : true)
    throw err
  }
}

describe('query plans', () => {
  it('every statement the services run uses an index on the large tables', async () => {
    const did = 'did:plc:u7'
    const convoId = 'c7'
    const groupId = (
      await sql<{ id: string }>`SELECT group_id AS id FROM convo WHERE id = ${convoId}`.execute(database.db)
    ).rows[0]!.id
    /** A Welcome naming the key packages seeded with these numbers. */
    const welcomeFor = (...seeds: number[]) => ({
      data: new Uint8Array([5]),
      cipherSuite: 's',
      // The seeded refs: sha256(int4send(-i)).
      keyPackageRefs: seeds.map((i) => {
        const int4 = Buffer.alloc(4)
        int4.writeInt32BE(-i)
        return createHash('sha256').update(int4).digest()
      }),
    })
    const groupInfoOf = (convoGroupId: string, epoch: number) => ({
      data: new Uint8Array([6]),
      groupId: convoGroupId,
      epoch,
      cipherSuite: 's',
      externalPub: true,
    })
    /** The Welcome naming those seeded key packages, reserved for `caller` in `convo` (as the API does first). */
    const reserved = (convo: string, caller: string, dids: string[], ...seeds: number[]) =>
      reserveWelcome(traced, { convoId: convo, caller, dids, welcome: welcomeFor(...seeds) })
    const groupOf = async (id: string) =>
      (await sql<{ id: string }>`SELECT group_id AS id FROM convo WHERE id = ${id}`.execute(database.db)).rows[0]!.id
    // Run each service once (errors are fine: the statements were still captured).
    const calls: Array<() => Promise<unknown>> = [
      () => requireMember(traced, convoId, did),
      () => listMessages(traced, { convoId, did, limit: 50 }),
      () => sendMessage(traced, { convoId, sender: did, groupId, epoch: 10, ciphertext: new Uint8Array([1]) }),
      // A commit on the current epoch (10), then the same again: a retry, looked up.
      // It brings the GroupInfo of epoch 11 (stored with it); the next commit (addMembers) brings none (deleted).
      () =>
        sendCommit(traced, {
          convoId,
          sender: did,
          commit: { data: new Uint8Array([2]), groupId, epoch: 10, groupInfo: groupInfoOf(groupId, 11) },
        }),
      () => sendCommit(traced, { convoId, sender: did, commit: { data: new Uint8Array([2]), groupId, epoch: 10 } }),
      // Stored, then the same again (not stored: why?), then read.
      async () =>
        putGroupInfo(traced, { convoId: 'c9', caller: 'did:plc:u9', info: groupInfoOf(await groupOf('c9'), 10) }),
      async () =>
        putGroupInfo(traced, { convoId: 'c9', caller: 'did:plc:u9', info: groupInfoOf(await groupOf('c9'), 10) }),
      () => fetchGroupInfo(traced, { convoId: 'c9', caller: 'did:plc:u9' }),
      // did:plc:lr5 has only a last-resort package.
      () => claimKeyPackages(traced, { dids: ['did:plc:lr5', 'did:plc:u3'], claimedBy: did }),
      () =>
        publishKeyPackage(traced, {
          owner: 'did:plc:lr7',
          cipherSuite: 's',
          data: new Uint8Array([7, 7]),
          ref: new Uint8Array([7]),
          signatureKey: new Uint8Array([7]),
          expiresAt: new Date(Date.now() + 1e6),
          maxPerUser: 1000,
          lastResort: true,
        }),
      () => listConvos(traced, { did, limit: 50 }),
      () => listCommits(traced, { convoId, currentEpoch: 10, fromEpoch: 2, limit: 100 }),
      () => claimKeyPackages(traced, { dids: ['did:plc:hot', 'did:plc:u4'], claimedBy: did }),
      () => claimKeyPackages(traced, { dids: ['did:plc:hot'], cipherSuite: 's', claimedBy: did }),
      () => keyPackageStats(traced, { owner: did, threshold: 10 }),
      () =>
        publishKeyPackage(traced, {
          owner: did,
          cipherSuite: 's',
          data: new Uint8Array([9, 9]),
          ref: new Uint8Array([8]),
          signatureKey: new Uint8Array([8]),
          expiresAt: new Date(Date.now() + 1e6),
          maxPerUser: 1000,
          lastResort: false,
        }),
      () => fetchWelcome(traced, { convoId, did: 'did:plc:r1', graceSeconds: 300 }),
      () => confirmWelcome(traced, { convoId, did: 'did:plc:r1', success: true }),
      () => sweepWelcomes(traced, { graceSeconds: 300, retentionDays: 14, batchSize: 100 }),
      () => deleteExpiredIdempotencyKeys(traced, 100),
      // The Welcome's packages are reserved on their owners' shards, then the change admits them: a package
      // handed out to the creator; one handed to the caller for a new member; a last-resort package handed out
      // to the caller (did:plc:u2 got lr9's); then one not handed out to the caller (the refusal's diagnosis).
      async () =>
        createConvo(traced, {
          creator: did,
          groupId: 'ff01',
          cipherSuite: 's',
          initialMembers: ['did:plc:u2'],
          welcome: await reserved(convoIdOf('ff01'), did, ['did:plc:u2'], 2),
          commit: { data: new Uint8Array([1]), groupId: 'ff01', epoch: 0 },
          welcomeRetentionDays: 14,
        }),
      async () =>
        addMembers(traced, {
          convoId,
          caller: did,
          dids: ['did:plc:u6'],
          commit: { data: new Uint8Array([3]), groupId, epoch: 11 },
          welcome: await reserved(convoId, did, ['did:plc:u6'], 6),
          maxMembers: 100,
          welcomeRetentionDays: 14,
        }),
      async () =>
        addMembers(traced, {
          convoId: 'c2',
          caller: 'did:plc:u2',
          dids: ['did:plc:lr9'],
          commit: { data: new Uint8Array([3]), groupId: await groupOf('c2'), epoch: 10 },
          welcome: await reserved('c2', 'did:plc:u2', ['did:plc:lr9'], 200009),
          maxMembers: 100,
          welcomeRetentionDays: 14,
        }),
      () => reserved(convoId, did, ['did:plc:u5'], 5),
      () =>
        removeMember(traced, {
          convoId,
          caller: did,
          target: 'did:plc:u8',
          commit: { data: new Uint8Array([4]), groupId, epoch: 11 },
        }),
      // Event streams: the hub's reads (one range, and several: with each event's predecessor), a resume's.
      () => highestEventId(traced, 2 ** 48),
      ...[false, true].flatMap((withPrev) => [
        ...(['together', 'apart'] as const).map(
          (read) => () =>
            readEvents(traced, { after: 1000, upTo: Number.MAX_SAFE_INTEGER }, { limit: 500, withPrev, read }),
        ),
        () => readEventRefs(traced, { after: 1000, upTo: Number.MAX_SAFE_INTEGER }, { limit: 500, withPrev }),
      ]),
      () => memberships(traced, [did, 'did:plc:u8'], [convoId, 'c8']),
      () => lowestEventId(traced, { after: 0, upTo: 2 ** 48 }),
      () => replayEvents(traced, { did, segments: [{ after: 1000, upTo: 200_000 }], withPrev: false, limit: 500 }),
      () =>
        replayEvents(traced, {
          did,
          convoId,
          segments: [
            { after: 1000, upTo: 200_000 },
            { after: 2 ** 48, upTo: 2 ** 48 + 10 },
          ],
          withPrev: true,
          limit: 500,
        }),
      // Devices: did:plc:u7 registers one (with a package), then publishes, reads, syncs, deletes it; u9 opts out and in.
      ...deviceCalls(did),
      // Push: did:plc:u3 (a member of c3, at epoch 10) registers a device and its token, sends from it, forgets it.
      ...pushCalls('did:plc:u3', 'c3', await groupOf('c3')),
      // Retention, last: it deletes c11's messages (all older than the horizon) and the settled moderation records.
      () => conversationsDue(traced, new Date(), 100),
      () => purgeOldMessages(traced, { convoId: 'c11', horizon: new Date(), limit: 100 }),
      () => purgedUpTo(traced, 'c11'),
      () => purgeOldModeration(traced, { horizon: new Date(), limit: 100 }),
    ]
    for (const call of calls) await call().catch(() => {})
    await listMessages(traced, { convoId, did, sinceMessage: randomUUID(), limit: 50 }).catch(() => {})

    expect(captured.length).toBeGreaterThanOrEqual(25)
    // The statements of devices ran too.
    for (const statement of [
      'INSERT INTO device',
      'UPDATE device SET last_seen_at',
      'DELETE FROM device',
      'unnest(',
      'LATERAL',
      'insert into "opt_out"',
      'delete from "welcome_delivery"',
      'SELECT device_id FROM device',
      'insert into "push_token"',
      'INSERT INTO push_outbox',
      'delete from "push_token"',
    ]) {
      expect(
        captured.some((q) => q.sql.includes(statement)),
        statement,
      ).toBe(true)
    }
    // The statements of GroupInfo, last-resort hand-outs, event streams and retention ran (a refusal before them would hide them from this test).
    for (const statement of [
      'INSERT INTO group_info',
      'DELETE FROM group_info',
      'from "group_info"',
      'INSERT INTO last_resort_handout',
      'FROM last_resort_handout h',
      'UPDATE key_package SET reserved_convo_id',
      'INSERT INTO admitted_key_package',
      'select "consumed_by", "reserved_convo_id"',
      'DELETE FROM last_resort_handout',
      'as "prev_event_id"',
      'inner join "member"',
      'DELETE FROM convo_event e',
      'DELETE FROM "member_report"',
    ]) {
      expect(
        captured.some((q) => q.sql.includes(statement)),
        statement,
      ).toBe(true)
    }
    const offenders: string[] = []
    // Transaction control (begin/commit/rollback) has no plan.
    for (const query of captured.filter((q) => !/^(begin|commit|rollback)\b/i.test(q.sql.trim()))) {
      // EXPLAIN takes the statement's own parameters over the extended protocol.
      const { rows } = await database.pool.query<{ 'QUERY PLAN': unknown }>(`EXPLAIN (FORMAT JSON) ${query.sql}`, [
        ...query.parameters,
      ])
      const scans = seqScans(rows[0]!['QUERY PLAN'])
      if (scans.length) offenders.push(`${scans.join(',')}: ${query.sql.replace(/\s+/g, ' ').slice(0, 160)}`)
    }
    expect(offenders).toEqual([])

    // Prepared statements switch to a generic plan (for any values) after five runs: it must be as safe,
    // for the skewed owner and conversation too.
    const generic: string[] = []
    for (const query of captured.filter((q) => !/^(begin|commit|rollback)\b/i.test(q.sql.trim()))) {
      const scans = seqScans(await genericPlan(query.sql, query.parameters))
      if (scans.length) generic.push(`${scans.join(',')}: ${query.sql.replace(/\s+/g, ' ').slice(0, 160)}`)
    }
    expect(generic).toEqual([])
  }, 60_000)

  /** The scans of distributed tables in a plan, with the conditions each applies. */
  function shardScans(plan: unknown, found: Array<{ table: string; conditions: string }> = []) {
    if (Array.isArray(plan)) plan.forEach((p) => shardScans(p, found))
    else if (plan && typeof plan === 'object') {
      const node = plan as Record<string, unknown>
      const table = String(node['Relation Name'])
      // A row an INSERT adds goes to the shard of its own values; an UPDATE's or DELETE's rows are found by the scan under it.
      if (table in SHARD_COLUMNS && node['Node Type'] !== 'ModifyTable') {
        found.push({
          table,
          conditions: ['Index Cond', 'Recheck Cond', 'Filter'].map((k) => String(node[k] ?? '')).join(' '),
        })
      }
      Object.values(node).forEach((v) => shardScans(v, found))
    }
    return found
  }

  const WRITE = /\b(insert|update|delete)\b|\bfor (update|share)\b/i
  const oneLine = (text: string) => text.replace(/\s+/g, ' ').slice(0, 160)

  // Issue 19: what lets every write run on one shard of a distributed database (Citus).
  it('writes name one shard key, call no volatile function where Citus refuses it, and only sweeps go table-wide', async () => {
    expect(captured.filter((q) => /^begin\b/i.test(q.sql.trim())).length).toBeGreaterThanOrEqual(3)
    // The sweeps are set-based on purpose: each picks a batch by key, locks nothing it picks and reads no ctid (rule 6).
    const sweepsFrom = captured.length
    await sweepWelcomes(traced, { graceSeconds: 300, retentionDays: 14, batchSize: 100 })
    await deleteExpiredIdempotencyKeys(traced, 100)
    await purgeOldModeration(traced, { horizon: new Date(), limit: 100 })
    const sweeps = new Set(captured.slice(sweepsFrom).map((q) => q.sql))
    expect(sweeps.size).toBe(7)
    const offenders: string[] = []
    /** The shard key values the statements of the open transaction narrowed to (rule 1, for transactions). */
    let transaction: { values: Set<unknown>; statements: string[] } | undefined
    for (const query of captured) {
      const text = query.sql.replace(/--[^\n]*/g, '')
      if (/^\s*begin\b/i.test(text)) {
        transaction = { values: new Set(), statements: [] }
        continue
      }
      if (/^\s*(commit|rollback)\b/i.test(text)) {
        if (transaction && transaction.values.size > 1) {
          offenders.push(
            `a transaction on ${transaction.values.size} shard keys: ${transaction.statements.join(' / ')}`,
          )
        }
        transaction = undefined
        continue
      }
      // Rule 3: the clock is read outside CASE, COALESCE and ON CONFLICT DO UPDATE; ids come from the app.
      if (/gen_random_uuid|uuid_generate|\brandom\(|clock_timestamp/i.test(text))
        offenders.push(`volatile function: ${oneLine(text)}`)
      if (/\bCASE\b(?:(?!\bEND\b)[\s\S])*\bnow\(\)/i.test(text) || /coalesce\([^)]*now\(\)/i.test(text))
        offenders.push(`now() in CASE/COALESCE: ${oneLine(text)}`)
      for (const set of text.split(/DO UPDATE\s+SET/i).slice(1)) {
        if (/now\(\)/i.test(set.split(/\bWHERE\b|\bRETURNING\b|\n\s*\)/i)[0] as string))
          offenders.push(`now() in ON CONFLICT DO UPDATE: ${oneLine(text)}`)
      }
      // Rule 6: no physical addresses, which differ between shards.
      if (/\bctid\b/i.test(text)) offenders.push(`ctid: ${oneLine(text)}`)
      const plan = await genericPlan(text, query.parameters)
      if (sweeps.has(query.sql)) {
        if (JSON.stringify(plan).includes('"LockRows"')) offenders.push(`sweep locks rows: ${oneLine(text)}`)
        continue
      }
      if (!WRITE.test(text) && !transaction) continue
      transaction?.statements.push(oneLine(text).slice(0, 60))
      // Rule 1: every distributed table a write names is narrowed to one shard key by a parameter; in a
      // transaction, every statement to the same one.
      for (const scan of shardScans(plan)) {
        const column = SHARD_COLUMNS[scan.table] as string
        const params = [...scan.conditions.matchAll(new RegExp(`\\b${column} = \\$(\\d+)`, 'g'))]
        if (params.length === 0 && WRITE.test(text))
          offenders.push(`${scan.table} without ${column} = $n: ${oneLine(text)}`)
        for (const [, n] of params) transaction?.values.add(query.parameters[Number(n) - 1])
      }
    }
    expect(offenders).toEqual([])
  }, 60_000)
})
