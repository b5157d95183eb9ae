/**
 * Runs the write paths of the services on a Citus coordinator
 * (scripts/citus.sh explain), as the server runs there (delegated writes on:
 * src/db/delegated.ts): publish a key package, create a conversation, claim
 * a key package, reserve it for a Welcome and add its owner with that
 * Welcome (createConvo and addMembers also with an idempotency key, whose
 * claim opens their transaction), send messages (without and with an
 * idempotency key, and its replay) and a commit, fetch and confirm the
 * Welcome, sweep; register a device with its key packages, publish a batch
 * with keyed items, sync the device's packages, delete it, opt out. For each it prints how many distributed transactions
 * committed in two phases (rows Citus adds to pg_dist_transaction) and, for
 * every statement it sent (a delegated write: the call of its function),
 * the Task Count of its distributed plan (1: it ran on one shard's node).
 */
import { createHash, randomBytes } from 'node:crypto'
import { Kysely, PostgresDialect, sql, type CompiledQuery } from 'kysely'
import { createDatabase } from '../src/db/index.js'
import type { DatabaseSchema, Db } from '../src/db/schema.js'
import { claimKey, deleteExpiredIdempotencyKeys } from '../src/idempotency/claim.js'
import { RecordFound, type RecordedWrite } from '../src/idempotency/statement.js'
import { reserveWelcome } from '../src/services/admission.js'
import { sendCommit } from '../src/services/commits.js'
import { createConvo } from '../src/services/convos.js'
import { deleteDevice, registerDevice, requireDevice, syncDeviceKeyPackages } from '../src/services/devices.js'
import {
  claimKeyPackages,
  publishKeyPackage,
  publishKeyPackageBatch,
  type BatchKeyPackage,
  type PublishKeyPackageArgs,
} from '../src/services/keyPackages.js'
import { optOut } from '../src/services/optOuts.js'
import { convoIdOf } from '../src/services/membership.js'
import { addMembers } from '../src/services/members.js'
import { sendMessage } from '../src/services/messages.js'
import { confirmWelcome, fetchWelcome, sweepWelcomes } from '../src/services/welcomes.js'

const url = process.env.DATABASE_URL
if (!url) throw new Error('DATABASE_URL: the Citus coordinator')
const database = createDatabase({ url, poolSize: 4, delegatedWrites: true })
const captured: CompiledQuery[] = []
const db = new Kysely<DatabaseSchema>({
  dialect: new PostgresDialect({ pool: database.pool }),
  log: (event) => void (event.level === 'query' && captured.push(event.query)),
})

const twoPhase = async () =>
  Number((await database.pool.query<{ n: string }>('SELECT count(*) AS n FROM pg_dist_transaction')).rows[0]?.n)

async function step(name: string, run: () => Promise<unknown>): Promise<void> {
  captured.length = 0
  const before = await twoPhase()
  await run()
  const prepared = (await twoPhase()) - before
  console.log(
    `\n## ${name}: ${prepared === 0 ? 'no PREPARE TRANSACTION' : `${prepared} transaction(s) committed in two phases`}`,
  )
  for (const query of captured) {
    if (/^(begin|commit|rollback)/i.test(query.sql.trim())) continue
    const sent = (await database.delegated?.sentText(query.sql)) ?? query.sql
    const { rows } = await database.pool.query<{ 'QUERY PLAN': string }>(`EXPLAIN ${sent}`, [...query.parameters])
    const plan = rows.map((r) => r['QUERY PLAN'])
    const tasks =
      plan
        .filter((line) => /Task Count:/.test(line))
        .map((line) => line.trim())
        .join(', ') || 'no distributed table'
    const text = (sent === query.sql ? sent : `${sent.replace(/\(\$.*/, '(...)')} <- ${query.sql}`).replace(/\s+/g, ' ')
    console.log(`- ${tasks} | ${text.trim().slice(0, 120)}`)
  }
}

const suite = 'MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519'
const did = (name: string) => `did:plc:${name}${randomBytes(4).toString('hex')}`
const keyed = (shardKey: string, callerDid: string, nsid: string, response: RecordedWrite['response']) => ({
  keyed: {
    shardKey,
    scope: randomBytes(32),
    callerDid,
    nsid,
    fingerprint: randomBytes(32),
    ttlSeconds: 600,
  },
  response,
})
const packageOf = (owner: string, data: Buffer): PublishKeyPackageArgs => ({
  owner,
  cipherSuite: suite,
  data,
  ref: createHash('sha256').update(data).digest(),
  signatureKey: randomBytes(32),
  expiresAt: new Date(Date.now() + 864e5),
  maxPerUser: 100,
  lastResort: false,
})
/** Key packages of one device: all signed by its key. */
const devicePackages = (count: number, signatureKey: Uint8Array): BatchKeyPackage[] =>
  Array.from({ length: count }, () => {
    const { cipherSuite, data, ref, expiresAt } = packageOf('', randomBytes(64))
    return { cipherSuite, data, ref, expiresAt, signatureKey }
  })
const registration = (user: string, signatureKey: Uint8Array) => ({
  user,
  deviceUuid: randomBytes(8).toString('hex'),
  name: 'phone',
  signaturePublicKey: randomBytes(32),
  mlsKey: signatureKey,
  keyPackages: devicePackages(3, signatureKey).map((kp) => ({ ...kp, lastResort: false })),
  maxDevices: 10,
  maxKeyPackages: 100,
})
const batchOf = (owner: string, signatureKey: Uint8Array) => ({
  owner,
  maxPerUser: 100,
  items: devicePackages(3, signatureKey).map((kp, i) =>
    i === 0 ? kp : { ...kp, key: { scope: randomBytes(32), fingerprint: randomBytes(32) } },
  ),
  nsid: 'blue.catbird.mls.publishKeyPackages',
  ttlSeconds: 600,
})

const published: RecordedWrite['response'] = {
  name: 'published',
  json: (row) => sql`json_build_object('available', ${row}.available)`,
}
const sentResponse: RecordedWrite['response'] = {
  name: 'sent',
  json: (row) => sql`json_build_object('messageId', ${row}.id)`,
}

/** A conversation of `creator` alone, at epoch 0, for the sends. */
async function soloConvo(creator: string): Promise<{ id: string; groupId: string }> {
  const groupId = randomBytes(16).toString('hex')
  const { convo } = await createConvo(db, {
    creator,
    groupId,
    cipherSuite: suite,
    initialMembers: [],
    welcomeRetentionDays: 14,
  })
  return { id: convo.id, groupId }
}

/** `caller` adds `member` to `convo` at `epoch`, with a Welcome naming `ref`, reserved before (as the API does). */
async function addWithWelcome(
  on: Db,
  convo: { id: string; groupId: string },
  caller: string,
  member: string,
  ref: Buffer,
  epoch: number,
) {
  const welcome = await reserveWelcome(db, {
    convoId: convo.id,
    caller,
    dids: [member],
    welcome: { data: randomBytes(32), cipherSuite: suite, keyPackageRefs: [ref] },
  })
  return addMembers(on, {
    convoId: convo.id,
    caller,
    dids: [member],
    commit: { data: randomBytes(32), groupId: convo.groupId, epoch },
    welcome,
    maxMembers: 100,
    welcomeRetentionDays: 14,
  })
}

/** Runs `write` in the transaction a claim of a fresh idempotency key opens (createConvo's, addMembers'), and commits it. */
async function keyedTransaction(shardKey: string, caller: string, nsid: string, write: (trx: Db) => Promise<unknown>) {
  const { keyed: record } = keyed(shardKey, caller, nsid, sentResponse)
  const claim = await claimKey(database.pool, record, 1000, { distributed: true })
  if (claim.kind !== 'claimed') throw new Error(`a fresh key was ${claim.kind}`)
  await write(claim.transaction.db).catch(async (err: unknown) => {
    await claim.transaction.abort()
    throw err
  })
  await claim.transaction.commit(200, '{}')
}

// Each delegated write makes its function the first time it is sent (DDL,
// which Citus commits in two phases on every node): once per cluster, here.
await step('first sends: each delegated write makes its function', async () => {
  const owner = did('warm')
  await publishKeyPackage(db, packageOf(owner, randomBytes(64)))
  await publishKeyPackage(
    db,
    packageOf(owner, randomBytes(64)),
    keyed(owner, owner, 'blue.catbird.mls.publishKeyPackage', published),
  )
  await claimKeyPackages(db, { dids: [owner], claimedBy: owner })
  const convo = await soloConvo(owner)
  const send = { convoId: convo.id, sender: owner, groupId: convo.groupId, epoch: 0, ciphertext: randomBytes(48) }
  await sendMessage(db, send)
  await sendMessage(db, send, keyed(convo.id, owner, 'blue.catbird.mls.sendMessage', sentResponse))
  await sendCommit(db, {
    convoId: convo.id,
    sender: owner,
    commit: { data: randomBytes(32), groupId: convo.groupId, epoch: 0 },
  })
  const member = did('warm')
  await publishKeyPackage(db, packageOf(member, randomBytes(64)))
  const [handed] = (await claimKeyPackages(db, { dids: [member], claimedBy: owner })).keyPackages
  await addWithWelcome(db, convo, owner, member, createHash('sha256').update(handed!.keyPackage).digest(), 1)
  const deviceKey = randomBytes(32)
  await registerDevice(db, registration(owner, deviceKey))
  await publishKeyPackageBatch(db, batchOf(owner, deviceKey))
})

const alice = did('alice')
const bob = did('bob')
const bobsPackage = randomBytes(64)
const ref = createHash('sha256').update(bobsPackage).digest()
await step('publishKeyPackage (bob)', () => publishKeyPackage(db, packageOf(bob, bobsPackage)))
await step('publishKeyPackage with an idempotency key (bob)', () =>
  publishKeyPackage(
    db,
    packageOf(bob, randomBytes(64)),
    keyed(bob, bob, 'blue.catbird.mls.publishKeyPackage', published),
  ),
)
const groupId = randomBytes(16).toString('hex')
let convoId = ''
await step('createConvo (alice)', async () => {
  convoId = (
    await createConvo(db, { creator: alice, groupId, cipherSuite: suite, initialMembers: [], welcomeRetentionDays: 14 })
  ).convo.id
})
await step("getKeyPackages (alice claims bob's)", () => claimKeyPackages(db, { dids: [bob], claimedBy: alice }))
await step(
  "addMembers (alice adds bob, commit and Welcome): first the reservation on bob's shard, then the change",
  () => addWithWelcome(db, { id: convoId, groupId }, alice, bob, ref, 0),
)
// The same, each in the transaction its idempotency key's claim opens.
const carol = did('carol')
const dave = did('dave')
const davesPackage = randomBytes(64)
await publishKeyPackage(db, packageOf(dave, davesPackage))
await claimKeyPackages(db, { dids: [dave], claimedBy: carol })
const carolsGroup = randomBytes(16).toString('hex')
const carols = { id: convoIdOf(carolsGroup), groupId: carolsGroup }
await step('createConvo with an idempotency key (carol)', () =>
  keyedTransaction(carols.id, carol, 'blue.catbird.mls.createConvo', (trx) =>
    createConvo(trx, {
      creator: carol,
      groupId: carols.groupId,
      cipherSuite: suite,
      initialMembers: [],
      welcomeRetentionDays: 14,
    }),
  ),
)
await step('addMembers with an idempotency key (carol adds dave)', () =>
  keyedTransaction(carols.id, carol, 'blue.catbird.mls.addMembers', (trx) =>
    addWithWelcome(trx, carols, carol, dave, createHash('sha256').update(davesPackage).digest(), 0),
  ),
)
const send = { convoId, sender: alice, groupId, epoch: 1, ciphertext: randomBytes(48) }
await step('sendMessage (alice)', () => sendMessage(db, send))
const record = keyed(convoId, alice, 'blue.catbird.mls.sendMessage', sentResponse)
await step('sendMessage with an idempotency key (alice)', () => sendMessage(db, send, record))
await step('sendMessage replayed (the same key: answered by its record, nothing written)', () =>
  sendMessage(db, send, record).then(
    () => {
      throw new Error('the replay wrote')
    },
    (err: unknown) => {
      if (!(err instanceof RecordFound)) throw err
    },
  ),
)
await step('sendMessage carrying a commit (alice)', () =>
  sendCommit(db, { convoId, sender: alice, commit: { data: randomBytes(32), groupId, epoch: 1 } }),
)
await step('getWelcome (bob)', () => fetchWelcome(db, { convoId, did: bob, graceSeconds: 300 }))
await step('confirmWelcome (bob)', () => confirmWelcome(db, { convoId, did: bob, success: true }))
await step('sweeps (set-based, every shard)', async () => {
  await sweepWelcomes(db, { graceSeconds: 300, retentionDays: 14, batchSize: 100 })
  await deleteExpiredIdempotencyKeys(db, 100)
})
const erin = did('erin')
const erinsKey = randomBytes(32)
const erinsDevice = registration(erin, erinsKey)
await step("registerDevice (erin): the device, its key packages, and erin's of its key bound to it", () =>
  registerDevice(db, erinsDevice),
)
await step('publishKeyPackages (erin: a batch of three, two with keys of their own)', () =>
  publishKeyPackageBatch(db, batchOf(erin, erinsKey)),
)
await step("getKeyPackages (alice claims one of each of erin's devices)", () =>
  claimKeyPackages(db, { dids: [erin], claimedBy: alice }),
)
const device = await requireDevice(db, erin, erinsDevice.deviceUuid)
await step("syncKeyPackages (erin's device holds none: its unused packages withdrawn)", () =>
  syncDeviceKeyPackages(db, { user: erin, device, held: [], welcomeRetentionDays: 14 }),
)
await step("deleteDevice (erin's)", () => deleteDevice(db, { user: erin, device, welcomeRetentionDays: 14 }))
await step('optOut (erin)', () => optOut(db, erin))
await database.close()
