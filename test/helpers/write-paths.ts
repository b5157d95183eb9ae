/**
 * Every write path of the services, each delegated write in every shape
 * (src/db/delegated.ts, DELEGATED_WRITES), run once through the services as
 * the handlers run them, on made-up bytes (the services do not read MLS):
 * what scripts/citus-explain.ts counts on every node of a cluster, and what
 * test/db/steps.test.ts runs both as statements and as functions. Each path
 * makes its own users and conversations, so the whole can run again.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto'
import { sql } from 'kysely'
import type { Database } from '../../src/db/index.js'
import type { Db } from '../../src/db/schema.js'
import { claimKey, deleteExpiredIdempotencyKeys } from '../../src/idempotency/claim.js'
import { RecordFound, type RecordedWrite } from '../../src/idempotency/statement.js'
import { reserveWelcome } from '../../src/services/admission.js'
import { sendCommit } from '../../src/services/commits.js'
import { createConvo } from '../../src/services/convos.js'
import { Refusal } from '../../src/services/errors.js'
import { registerDevice } from '../../src/services/devices.js'
import {
  claimDeviceKeyPackage,
  claimKeyPackages,
  publishKeyPackage,
  publishKeyPackageBatch,
  type BatchKeyPackage,
} from '../../src/services/keyPackages.js'
import { optOut } from '../../src/services/optOuts.js'
import { addMembers, removeMember } from '../../src/services/members.js'
import { convoIdOf } from '../../src/services/membership.js'
import { sendMessage } from '../../src/services/messages.js'
import { rejoin } from '../../src/services/rejoin.js'
import { confirmWelcome, fetchWelcome, sweepWelcomes } from '../../src/services/welcomes.js'

/**
 * How a path is run: `hot` paths are requests' writes, each of which must
 * stay on its shard's node (the sweeps are not: they span every shard).
 */
export type RunPath = (name: string, run: () => Promise<unknown>, opts?: { hot: false }) => Promise<void>

const SUITE = 'MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519'
const did = (name: string) => `did:plc:${name}${randomBytes(6).toString('hex')}`
const bytes = () => randomBytes(48)
const refOf = (data: Uint8Array) => createHash('sha256').update(data).digest()
const json = (fields: Record<string, unknown>) =>
  sql`json_build_object(${sql.join(Object.entries(fields).map(([key, value]) => sql`${sql.lit(key)}, ${value}`))})`

/** A keyed write's record, answered with a JSON of the written row (as the handlers' are). */
const keyed = (shardKey: string, callerDid: string, nsid: string, answer: string[]): RecordedWrite => ({
  keyed: { shardKey, scope: randomBytes(32), callerDid, nsid, fingerprint: randomBytes(32), ttlSeconds: 600 },
  response: {
    name: `${nsid}:${answer.join()}`,
    json: (row) => json(Object.fromEntries(answer.map((column) => [column, sql`${row}.${sql.raw(column)}`]))),
  },
})
const sentKey = (convoId: string, caller: string) =>
  keyed(convoId, caller, 'blue.catbird.mls.sendMessage', ['id', 'created_at', 'seq', 'epoch'])
const publishedKey = (owner: string) => keyed(owner, owner, 'blue.catbird.mls.publishKeyPackage', ['available'])

/** Runs `write` and expects `RecordFound` (a keyed write's replay: nothing written) or a refusal named `error`. */
async function refused(write: () => Promise<unknown>, error?: string): Promise<void> {
  const outcome = await write().then(
    () => 'written',
    (err: unknown) => {
      if (err instanceof RecordFound) return 'RecordFound'
      if (err instanceof Refusal) return err.error
      throw err
    },
  )
  if (outcome !== (error ?? 'RecordFound')) throw new Error(`expected ${error ?? 'RecordFound'}, got ${outcome}`)
}

export async function runWritePaths(database: Pick<Database, 'db' | 'pool'>, path: RunPath): Promise<void> {
  const { db, pool } = database
  const distributed = database.pool.options.options?.includes('citus') ?? false

  const leafKey = randomBytes(32)
  const packageOf = (owner: string, data: Uint8Array, lastResort = false) => ({
    owner,
    cipherSuite: SUITE,
    data,
    ref: refOf(data),
    signatureKey: leafKey,
    expiresAt: new Date(Date.now() + 864e5),
    maxPerUser: 100,
    lastResort,
  })
  /** Key packages of one device: all signed by its key, the last two with idempotency keys of their own. */
  const devicePackages = (count: number, signatureKey: Uint8Array): BatchKeyPackage[] =>
    Array.from({ length: count }, (_, i) => {
      const data = bytes()
      const item = { cipherSuite: SUITE, data, ref: refOf(data), signatureKey, expiresAt: new Date(Date.now() + 864e5) }
      return i === 0 ? item : { ...item, key: { scope: randomBytes(32), fingerprint: randomBytes(32) } }
    })
  const registration = (user: string, mlsKey: Uint8Array, deviceUuid = randomUUID()) => ({
    user,
    deviceUuid,
    name: 'phone',
    signaturePublicKey: randomBytes(32),
    mlsKey,
    keyPackages: devicePackages(3, mlsKey).map((kp) => ({ ...kp, lastResort: false })),
    maxDevices: 10,
    maxKeyPackages: 100,
  })
  const batch = (owner: string, items: BatchKeyPackage[], maxPerUser = 100) => ({
    owner,
    maxPerUser,
    items,
    nsid: 'blue.catbird.mls.publishKeyPackages',
    ttlSeconds: 600,
  })
  /** A key package of `owner`'s, published, claimed by `caller`: its ref, for a Welcome. */
  const handedOut = async (owner: string, caller: string) => {
    const data = bytes()
    await publishKeyPackage(db, packageOf(owner, data))
    await claimKeyPackages(db, { dids: [owner], claimedBy: caller })
    return refOf(data)
  }
  const welcomeFor = (refs: Uint8Array[]) => ({ data: bytes(), cipherSuite: SUITE, keyPackageRefs: refs })
  const soloConvo = async (creator: string, on: Db = db) => {
    const groupId = randomBytes(16).toString('hex')
    const { convo } = await createConvo(on, {
      creator,
      groupId,
      cipherSuite: SUITE,
      initialMembers: [],
      welcomeRetentionDays: 14,
    })
    return { id: convo.id, groupId, epoch: 0 }
  }
  /** `write` in the transaction a fresh idempotency key's claim opens (createConvo's, addMembers'), committed. */
  const inKeyedTransaction = async (shardKey: string, caller: string, write: (trx: Db) => Promise<unknown>) => {
    const claim = await claimKey(pool, keyed(shardKey, caller, 'blue.catbird.mls.addMembers', []).keyed, 1000, {
      distributed,
    })
    if (claim.kind !== 'claimed') throw new Error(`a fresh key was ${claim.kind}`)
    await write(claim.transaction.db).catch(async (err: unknown) => {
      await claim.transaction.abort()
      throw err
    })
    await claim.transaction.commit(200, '{}')
  }

  // Key packages.
  const bob = did('bob')
  const bobsPackage = bytes()
  await path('publishKeyPackage', () => publishKeyPackage(db, packageOf(bob, bobsPackage)))
  await path('publishKeyPackage: the same again (refused)', () =>
    refused(() => publishKeyPackage(db, packageOf(bob, bobsPackage)), 'DuplicateKeyPackage'),
  )
  const bobsKey = publishedKey(bob)
  const bobsKeyed = packageOf(bob, bytes())
  await path('publishKeyPackage with an idempotency key', () => publishKeyPackage(db, bobsKeyed, bobsKey))
  await path('publishKeyPackage replayed (its record answers)', () =>
    refused(() => publishKeyPackage(db, bobsKeyed, bobsKey)),
  )
  const carol = did('carol')
  await path('publishKeyPackage, last resort', () => publishKeyPackage(db, packageOf(carol, bytes(), true)))
  await path('publishKeyPackage, last resort replacing the last one, with an idempotency key', () =>
    publishKeyPackage(db, packageOf(carol, bytes(), true), publishedKey(carol)),
  )
  const alice = did('alice')
  await path('getKeyPackages: a regular one', () => claimKeyPackages(db, { dids: [bob], claimedBy: alice }))
  await path('getKeyPackages: the last-resort one', () =>
    claimKeyPackages(db, { dids: [carol], cipherSuite: SUITE, claimedBy: alice }),
  )
  await path('getKeyPackages: none left', () => claimKeyPackages(db, { dids: [did('nobody')], claimedBy: alice }))
  const dave = did('dave')
  const deviceId = randomUUID()
  await publishKeyPackage(db, packageOf(dave, bytes()))
  await sql`UPDATE key_package SET device_id = ${deviceId} WHERE owner_did = ${dave}`.execute(db)
  await path("claimPendingDeviceAddition: a device's key package", () =>
    claimDeviceKeyPackage(db, { owner: dave, deviceId, claimedBy: alice }),
  )

  // Devices.
  const gina = did('gina')
  const phoneKey = randomBytes(32)
  const phone = registration(gina, phoneKey)
  await path('registerDevice: a device and its key packages', () => registerDevice(db, phone))
  await path('registerDevice again: the same device, a new MLS key (its unused packages withdrawn)', () =>
    registerDevice(db, { ...phone, mlsKey: randomBytes(32), keyPackages: [] }),
  )
  const laptopKey = randomBytes(32)
  await registerDevice(db, registration(gina, laptopKey))
  const items = devicePackages(3, laptopKey)
  await path('publishKeyPackages: a batch, two items with keys of their own', () =>
    publishKeyPackageBatch(db, batch(gina, items)),
  )
  await path('publishKeyPackages again: replayed, reused keys, duplicates, an item past the limit', () =>
    publishKeyPackageBatch(
      db,
      batch(
        gina,
        [
          ...items.map((item, i) =>
            i === 2 && item.key ? { ...item, key: { ...item.key, fingerprint: bytes() } } : item,
          ),
          ...devicePackages(2, laptopKey),
        ],
        4,
      ),
    ),
  )
  await publishKeyPackage(db, { ...packageOf(gina, bytes()), signatureKey: randomBytes(32) })
  await path("getKeyPackages: one of each of the owner's devices (and of no device)", () =>
    claimKeyPackages(db, { dids: [gina], claimedBy: alice }),
  )
  await optOut(db, gina)
  await path('getKeyPackages of an owner who opted out: none', () =>
    claimKeyPackages(db, { dids: [gina], claimedBy: alice }),
  )

  // Conversations.
  await path('createConvo', () => soloConvo(alice))
  await path('createConvo with a GroupInfo', () => {
    const groupId = randomBytes(16).toString('hex')
    return createConvo(db, {
      creator: alice,
      groupId,
      cipherSuite: SUITE,
      initialMembers: [],
      groupInfo: { data: bytes(), groupId, epoch: 0, cipherSuite: SUITE, externalPub: true },
      welcomeRetentionDays: 14,
    })
  })
  const erin = did('erin')
  const erinsRef = await handedOut(erin, alice)
  const withErin = randomBytes(16).toString('hex')
  await path(
    "createConvo with a member and its Welcome (the reservation on the member's shard, then the conversation's)",
    async () => {
      const welcome = await reserveWelcome(db, {
        convoId: convoIdOf(withErin),
        caller: alice,
        dids: [erin],
        welcome: welcomeFor([erinsRef]),
      })
      return createConvo(db, {
        creator: alice,
        groupId: withErin,
        cipherSuite: SUITE,
        initialMembers: [erin],
        ...(welcome ? { welcome } : {}),
        commit: { data: bytes(), groupId: withErin, epoch: 0 },
        welcomeRetentionDays: 14,
      })
    },
  )
  const ivy = did('ivy')
  const ivysRef = await handedOut(ivy, alice)
  await path('createConvo with a member and its Welcome, no commit, queued to be pushed', async () => {
    const groupId = randomBytes(16).toString('hex')
    const welcome = await reserveWelcome(db, {
      convoId: convoIdOf(groupId),
      caller: alice,
      dids: [ivy],
      welcome: welcomeFor([ivysRef]),
    })
    return createConvo(db, {
      creator: alice,
      groupId,
      cipherSuite: SUITE,
      initialMembers: [ivy],
      ...(welcome ? { welcome } : {}),
      welcomeRetentionDays: 14,
      push: { commits: false },
    })
  })
  await path('createConvo with an idempotency key', () => {
    const groupId = randomBytes(16).toString('hex')
    return inKeyedTransaction(convoIdOf(groupId), alice, (trx) =>
      createConvo(trx, { creator: alice, groupId, cipherSuite: SUITE, initialMembers: [], welcomeRetentionDays: 14 }),
    )
  })
  await path('createConvo of a group that exists (refused)', () =>
    refused(
      () =>
        createConvo(db, {
          creator: alice,
          groupId: withErin,
          cipherSuite: SUITE,
          initialMembers: [],
          welcomeRetentionDays: 14,
        }),
      'ConvoAlreadyExists',
    ),
  )

  // Messages and commits.
  const convo = await soloConvo(alice)
  const send = () => ({
    convoId: convo.id,
    sender: alice,
    groupId: convo.groupId,
    epoch: convo.epoch,
    ciphertext: bytes(),
  })
  await path('sendMessage', () => sendMessage(db, send()))
  const aliceKey = sentKey(convo.id, alice)
  const keyedSend = send()
  await path('sendMessage with an idempotency key', () => sendMessage(db, keyedSend, aliceKey))
  await path('sendMessage replayed (its record answers)', () => refused(() => sendMessage(db, keyedSend, aliceKey)))
  const named = { ...send(), msgId: randomUUID().toUpperCase() }
  await path('sendMessage named by a msgId', () => sendMessage(db, named))
  await path('sendMessage named by a msgId again (the first answers)', () => sendMessage(db, named))
  await path('sendMessage reusing a msgId for other bytes (refused)', () =>
    refused(() => sendMessage(db, { ...named, ciphertext: bytes() }), 'MsgIdReused'),
  )
  await path('sendMessage named by a msgId, with an idempotency key', () =>
    sendMessage(db, { ...send(), msgId: randomUUID() }, sentKey(convo.id, alice)),
  )
  await path('sendMessage of a past epoch (refused)', () =>
    refused(() => sendMessage(db, { ...send(), epoch: convo.epoch + 1 }), 'EpochMismatch'),
  )
  const commit = () => ({ data: bytes(), groupId: convo.groupId, epoch: convo.epoch++ })
  await path('sendMessage carrying a commit', () =>
    sendCommit(db, { convoId: convo.id, sender: alice, commit: commit() }),
  )
  await path('sendMessage carrying a commit and its GroupInfo', () => {
    const withInfo = commit()
    const groupInfo = {
      data: bytes(),
      groupId: convo.groupId,
      epoch: withInfo.epoch + 1,
      cipherSuite: SUITE,
      externalPub: true,
    }
    return sendCommit(db, { convoId: convo.id, sender: alice, commit: { ...withInfo, groupInfo } })
  })
  await path('sendMessage carrying a commit, with an idempotency key', () =>
    sendCommit(db, { convoId: convo.id, sender: alice, commit: commit() }, sentKey(convo.id, alice)),
  )
  await path('sendMessage queued to be pushed', () => sendMessage(db, { ...send(), push: { commits: false } }))
  await path('sendMessage queued to be pushed, with an idempotency key', () =>
    sendMessage(db, { ...send(), push: { commits: false } }, sentKey(convo.id, alice)),
  )
  await path('sendMessage carrying a commit, queued to be pushed', () =>
    sendCommit(db, { convoId: convo.id, sender: alice, commit: commit(), push: { commits: true } }),
  )

  // Membership changes.
  const frank = did('frank')
  const addFrank = async (on: Db) => {
    const welcome = await reserveWelcome(db, {
      convoId: convo.id,
      caller: alice,
      dids: [frank],
      welcome: welcomeFor([await handedOut(frank, alice)]),
    })
    return addMembers(on, {
      convoId: convo.id,
      caller: alice,
      dids: [frank],
      commit: commit(),
      ...(welcome ? { welcome } : {}),
      maxMembers: 100,
      welcomeRetentionDays: 14,
    })
  }
  await path("addMembers with a Welcome (the reservation on the member's shard, then the conversation's)", () =>
    addFrank(db),
  )
  await path('getWelcome', () => fetchWelcome(db, { convoId: convo.id, did: frank, graceSeconds: 300 }))
  await path('confirmWelcome', () => confirmWelcome(db, { convoId: convo.id, did: frank, success: true }))
  await path('leaveConvo (the member itself, no commit)', () =>
    removeMember(db, { convoId: convo.id, caller: frank, target: frank }),
  )
  await path('addMembers again, with an idempotency key', () => inKeyedTransaction(convo.id, alice, addFrank))
  await path('addMembers with an empty didList: a commit alone', () =>
    addMembers(db, {
      convoId: convo.id,
      caller: alice,
      dids: [],
      commit: commit(),
      maxMembers: 100,
      welcomeRetentionDays: 14,
    }),
  )
  // A new device of frank's, registered while he is a member: it waits to be added (a pending addition).
  await registerDevice(db, registration(frank, randomBytes(32)))
  const devicesPackage = async () => {
    const { keyPackages } = await claimKeyPackages(db, { dids: [frank], claimedBy: alice })
    return keyPackages.map((kp) => kp.ref)
  }
  await path("addMembers with an empty didList: a member's new device, with its Welcome", async () => {
    const welcome = await reserveWelcome(db, {
      convoId: convo.id,
      caller: alice,
      dids: [frank],
      welcome: welcomeFor(await devicesPackage()),
    })
    return addMembers(db, {
      convoId: convo.id,
      caller: alice,
      dids: [],
      commit: commit(),
      ...(welcome ? { welcome } : {}),
      maxMembers: 100,
      welcomeRetentionDays: 14,
      push: { commits: true },
    })
  })
  // Another, still waiting to be added when frank is removed.
  await registerDevice(db, registration(frank, randomBytes(32)))
  await path('removeMember by an admin, with the commit (his devices out, their addition cancelled, logged)', () =>
    removeMember(db, { convoId: convo.id, caller: alice, target: frank, commit: commit() }),
  )
  await path('processExternalCommit (a rejoin: the commit, in a transaction)', () =>
    rejoin(db, { convoId: convo.id, caller: alice, commit: commit(), joinerIdentity: alice }),
  )
  const henry = did('henry')
  const ivan = did('ivan')
  const henrys = await soloConvo(henry)
  const ivansWelcome = await reserveWelcome(db, {
    convoId: henrys.id,
    caller: henry,
    dids: [ivan],
    welcome: welcomeFor([await handedOut(ivan, henry)]),
  })
  await addMembers(db, {
    convoId: henrys.id,
    caller: henry,
    dids: [ivan],
    commit: { data: bytes(), groupId: henrys.groupId, epoch: henrys.epoch },
    welcome: ivansWelcome,
    maxMembers: 100,
    welcomeRetentionDays: 14,
  })
  await path('leaveConvo of the last admin (an heir appointed, logged)', () =>
    removeMember(db, { convoId: henrys.id, caller: henry, target: henry }),
  )
  await path(
    'sweeps (every shard)',
    async () => {
      await sweepWelcomes(db, { graceSeconds: 300, retentionDays: 14, batchSize: 100 })
      await deleteExpiredIdempotencyKeys(db, 100)
    },
    { hot: false },
  )
}
