/**
 * Devices: a user's registered devices, on the user's shard (device data is
 * keyed by the user's DID). A device is known by the id the server made for
 * it, by the client's own persistent UUID, and by fact: the MLS signature
 * key of its key packages' leaves, which binds each package to it.
 *
 * A deleted device's leaves stay in the MLS groups it joined until a member
 * commits their removal: the server cannot remove a leaf. Its rows of
 * member_device stay too (what happened), while the device is no longer
 * named anywhere else.
 */
import { randomBytes } from 'node:crypto'
import { sql } from 'kysely'
import { executeOnShard, onShard } from '../db/delegated.js'
import { violatedUniqueKey } from '../db/errors.js'
import type { Db } from '../db/schema.js'
import { execute, statement } from '../db/statement.js'
import type * as GetExpectedConversations from '../lexicon/types/blue.catbird.mls.getExpectedConversations.js'
import type * as ListDevices from '../lexicon/types/blue.catbird.mls.listDevices.js'
import type * as ValidateDeviceState from '../lexicon/types/blue.catbird.mls.validateDeviceState.js'
import { NSID } from '../lexicon/types/index.js'
import { conflict, invalidRequest, notFound, Refusal } from './errors.js'
import {
  batchCtes,
  batchFunctionBody,
  batchValues,
  keyPackageStats,
  outcomesColumn,
  publishKeyPackage,
  toOutcomes,
  withdrawUnheldKeyPackages,
  welcomeConvosOfDevice,
  type BatchKeyPackage,
  type BatchOutcome,
  type BatchValues,
} from './keyPackages.js'
import { addPendingAdditions, cancelPendingAdditions, mlsDidOf } from './pendingAdditions.js'
import { iso } from './timestamps.js'

export interface Device {
  deviceId: string
  deviceUuid: string | null
  name: string
  signaturePublicKey: Uint8Array
  mlsSignatureKey: Uint8Array
  createdAt: Date
  lastSeenAt: Date
}

/** The identity of a device in MLS terms, as clients name it. */

export const deviceNotFound = () => notFound('DeviceNotFound', 'You have no device with this id')
const alreadyRegistered = () =>
  conflict(
    'DeviceAlreadyRegistered',
    'Another of your devices is registered with this deviceUUID or with the key of these key packages',
  )

const DEVICE_COLUMNS = sql`device_id, device_uuid, name, signature_public_key, mls_signature_key, created_at, last_seen_at`

interface DeviceRow {
  device_id: string
  device_uuid: string | null
  name: string
  signature_public_key: Uint8Array
  mls_signature_key: Uint8Array
  created_at: Date
  last_seen_at: Date
}

const toDevice = (row: DeviceRow): Device => ({
  deviceId: row.device_id,
  deviceUuid: row.device_uuid,
  name: row.name,
  signaturePublicKey: row.signature_public_key,
  mlsSignatureKey: row.mls_signature_key,
  createdAt: row.created_at,
  lastSeenAt: row.last_seen_at,
})

/** A device named by its id, its mlsDid or the client's UUID: it was seen now. */
const seenDevice = statement(
  'device_seen',
  (v: { user: string; id: string; uuid: string }) => sql<DeviceRow>`
    UPDATE device SET last_seen_at = now()
    WHERE user_did = ${v.user} AND device_id = (
      SELECT device_id FROM device WHERE user_did = ${v.user} AND (device_id = ${v.id} OR device_uuid = ${v.uuid})
      ORDER BY device_id = ${v.id} DESC LIMIT 1)
    RETURNING ${DEVICE_COLUMNS}`,
)

/** The id a client's name of one of `user`'s devices stands for, if it is an id or an mlsDid (`<user DID>#<id>`). */
export function idOfName(user: string, name: string): string {
  const prefix = `${user}#`
  return name.startsWith(prefix) ? name.slice(prefix.length) : name
}

/**
 * The caller's device a client names, by the id the server made for it, by
 * its mlsDid (`<user DID>#<id>`) or by the client's own UUID (the iOS client
 * sends each in places), marked as seen now; 404 DeviceNotFound when the
 * caller has none of that name (another user's device included).
 */
export async function requireDevice(db: Db, user: string, name: string): Promise<Device> {
  const [row] = (await execute(db, seenDevice, { user, id: idOfName(user, name), uuid: name })).rows
  if (!row) throw deviceNotFound()
  return toDevice(row)
}

/** Of `devices` (all `user`'s), the one a client names as requireDevice reads names. */
export function namedDevice(devices: Device[], user: string, name: string): Device | undefined {
  const id = idOfName(user, name)
  return devices.find((d) => d.deviceId === id) ?? devices.find((d) => d.deviceUuid === name)
}

/** Every device of `user`, the most recently seen first. */
export async function devicesOf(db: Db, user: string): Promise<Device[]> {
  const rows = await db
    .selectFrom('device')
    .selectAll()
    .where('user_did', '=', user)
    .orderBy('last_seen_at', 'desc')
    .orderBy('device_id')
    .execute()
  return rows.map(toDevice)
}

export const sameBytes = (a: Uint8Array, b: Uint8Array): boolean => Buffer.from(a).equals(Buffer.from(b))

/**
 * The registered device a registration is for, if any: the one with its
 * deviceUUID; else the one with its MLS key (the key its packages prove it
 * holds); else the only one registered with its signaturePublicKey and no
 * other deviceUUID. A deviceUUID of one device and the MLS key of another
 * contradict each other.
 */
function registeredDevice(
  devices: Device[],
  args: { deviceUuid: string | undefined; signaturePublicKey: Uint8Array; mlsKey: Uint8Array },
): Device | undefined {
  const byUuid = args.deviceUuid === undefined ? undefined : devices.find((d) => d.deviceUuid === args.deviceUuid)
  const byMlsKey = devices.find((d) => sameBytes(d.mlsSignatureKey, args.mlsKey))
  if (byUuid && byMlsKey && byUuid !== byMlsKey) throw alreadyRegistered()
  if (byUuid ?? byMlsKey) return byUuid ?? byMlsKey
  const bySignatureKey = devices.filter(
    (d) =>
      sameBytes(d.signaturePublicKey, args.signaturePublicKey) &&
      (d.deviceUuid === null || args.deviceUuid === undefined),
  )
  return bySignatureKey.length === 1 ? bySignatureKey[0] : undefined
}

/** A new device's id: 64 random bits, lowercase hex (short, URL-safe, and saying nothing of anything). */
const newDeviceId = () => randomBytes(8).toString('hex')

interface RegisterValues extends BatchValues {
  deviceId: string
  deviceUuid: string | null
  name: string
  signaturePublicKey: Uint8Array
  mlsKey: Uint8Array
}

/**
 * A device registered (made, or its row brought up to date), with its key
 * packages, in one statement on the user's shard: its unused packages of
 * an MLS key it no longer has are withdrawn (it cannot open a Welcome to
 * them), the user's packages of its key that no device had are bound to it,
 * and the new packages are stored as publishKeyPackages stores a batch,
 * bound to it.
 */
const registerStatement = onShard<RegisterValues, { outcomes: string[]; withdrawn: number }>(
  'register_device',
  { shardKey: 'owner' },
  {
    columns: { outcomes: 'text[]', withdrawn: 'int' },
    statement: (v) => sql`
    WITH registered AS (
      INSERT INTO device (user_did, device_id, device_uuid, name, signature_public_key, mls_signature_key)
      VALUES (${v.owner}, ${v.deviceId}, ${v.deviceUuid}, ${v.name}, ${v.signaturePublicKey}, ${v.mlsKey})
      ON CONFLICT (user_did, device_id) DO UPDATE SET
        device_uuid = coalesce(EXCLUDED.device_uuid, device.device_uuid), name = EXCLUDED.name,
        signature_public_key = EXCLUDED.signature_public_key, mls_signature_key = EXCLUDED.mls_signature_key,
        last_seen_at = EXCLUDED.last_seen_at
      RETURNING device_id
    ), withdrawn AS (
      DELETE FROM key_package
      WHERE owner_did = ${v.owner} AND device_id = ${v.deviceId} AND consumed_at IS NULL
        AND leaf_signature_key IS DISTINCT FROM ${v.mlsKey}
      -- Citus takes no clock in RETURNING: whether each was available is asked below.
      RETURNING last_resort, expires_at
    ), bound AS (
      UPDATE key_package SET device_id = ${v.deviceId}
      WHERE owner_did = ${v.owner} AND device_id IS NULL AND leaf_signature_key = ${v.mlsKey}
    ), ${batchCtes(v, {
      device: sql`(SELECT device_id FROM registered)`,
      leaving: sql`(SELECT count(*) FROM withdrawn WHERE NOT last_resort AND expires_at > now())::int`,
    })}
    SELECT ${outcomesColumn}, (SELECT count(*)::int FROM withdrawn) AS withdrawn`,
    // The same, a statement at a time: the count of available packages is taken after the withdrawal.
    body: (v) =>
      batchFunctionBody(v, {
        declare: sql`withdrawn_count int;`,
        first: sql`
          INSERT INTO device (user_did, device_id, device_uuid, name, signature_public_key, mls_signature_key)
          VALUES (${v.owner}, ${v.deviceId}, ${v.deviceUuid}, ${v.name}, ${v.signaturePublicKey}, ${v.mlsKey})
          ON CONFLICT (user_did, device_id) DO UPDATE SET
            device_uuid = coalesce(EXCLUDED.device_uuid, device.device_uuid), name = EXCLUDED.name,
            signature_public_key = EXCLUDED.signature_public_key, mls_signature_key = EXCLUDED.mls_signature_key,
            last_seen_at = EXCLUDED.last_seen_at;
          DELETE FROM key_package
          WHERE owner_did = ${v.owner} AND device_id = ${v.deviceId} AND consumed_at IS NULL
            AND leaf_signature_key IS DISTINCT FROM ${v.mlsKey};
          GET DIAGNOSTICS withdrawn_count = ROW_COUNT;
          UPDATE key_package SET device_id = ${v.deviceId}
          WHERE owner_did = ${v.owner} AND device_id IS NULL AND leaf_signature_key = ${v.mlsKey};`,
        device: sql`item_device := ${v.deviceId};`,
        result: sql`RETURN QUERY SELECT outcomes, withdrawn_count;`,
      }),
  },
)

export interface RegisterDeviceArgs {
  user: string
  deviceUuid: string | undefined
  name: string
  signaturePublicKey: Uint8Array
  /** The signature key of the leaves of its key packages, which all share it. */
  mlsKey: Uint8Array
  /** Its key packages, checked (src/api/input.ts); last-resort ones are stored as publishKeyPackage stores them. */
  keyPackages: Array<BatchKeyPackage & { lastResort: boolean }>
  maxDevices: number
  maxKeyPackages: number
}

export interface Registration {
  deviceId: string
  /** It was not registered before. */
  created: boolean
  /** What became of each regular key package, in order (only `stored`, `duplicate` and `full` happen here). */
  outcomes: BatchOutcome[]
  /** Unused key packages of an MLS key the device no longer has, withdrawn. */
  withdrawn: number
  /** The new device's events in its user's conversations (newDeviceEvent), to announce. */
  events: number[]
}

/**
 * Registers a device of `user` with its key packages, or registers it
 * again (found by registeredDevice: it keeps its id, and its unused packages
 * of its current key, which it may still hold: syncKeyPackages is how a
 * device says which it lost). One read of the user's devices, one
 * statement (registerStatement); both on the user's shard. A registration
 * that raced another of the same device (both made it) is tried again
 * once, and then finds it. Packages past the user's limit are not stored;
 * nor are packages stored before (a retry), which count as the device's.
 */
export async function registerDevice(db: Db, args: RegisterDeviceArgs): Promise<Registration> {
  for (let attempt = 1; ; attempt++) {
    const devices = await devicesOf(db, args.user)
    const device = registeredDevice(devices, args)
    if (!device && devices.length >= args.maxDevices) {
      throw invalidRequest('TooManyDevices', `You already have ${args.maxDevices} registered devices`)
    }
    const deviceId = device?.deviceId ?? newDeviceId()
    const regular = args.keyPackages.filter((kp) => !kp.lastResort)
    const values: RegisterValues = {
      ...batchValues(args.user, args.maxKeyPackages, regular, { keyNsid: NSID.registerDevice, keyTtlSeconds: 0 }),
      deviceId,
      deviceUuid: args.deviceUuid ?? null,
      name: args.name,
      signaturePublicKey: args.signaturePublicKey,
      mlsKey: args.mlsKey,
    }
    try {
      const [row] = (await executeOnShard(db, registerStatement, values)).rows
      const { outcomes, withdrawn } = row as { outcomes: string[]; withdrawn: number }
      for (const kp of args.keyPackages.filter((k) => k.lastResort)) {
        await publishKeyPackage(db, {
          owner: args.user,
          ...kp,
          maxPerUser: args.maxKeyPackages,
        }).catch((err: unknown) => {
          // Published before: a retry of this registration.
          if (!(err instanceof Refusal && err.error === 'DuplicateKeyPackage')) throw err
        })
      }
      // A new device waits to be added to each of its user's conversations (by another member, or by itself).
      const events = device
        ? []
        : await addPendingAdditions(db, { userDid: args.user, deviceId, deviceName: args.name })
      return { deviceId, created: !device, outcomes: toOutcomes(outcomes), withdrawn, events }
    } catch (err) {
      const key = violatedUniqueKey(err)
      if (key !== 'device_uuid_key' && key !== 'device_mls_key') throw err
      if (attempt > 1) throw alreadyRegistered()
    }
  }
}

/** The MLS group ids (lowercase hex) of the conversations `user` is a current member of. */
export async function currentGroupIds(db: Db, user: string): Promise<string[]> {
  const rows = await db
    .selectFrom('member')
    .innerJoin('convo', 'convo.id', 'member.convo_id')
    .select('convo.group_id')
    .where('member.did', '=', user)
    .where('member.left_at', 'is', null)
    .orderBy('convo.group_id')
    .execute()
  return rows.map((row) => row.group_id.toLowerCase())
}

/** The caller's devices, the most recently seen first, each with its unused, unexpired key packages counted. */
export async function listDevices(db: Db, user: string): Promise<ListDevices.DeviceInfo[]> {
  const rows = await db
    .selectFrom('device')
    .leftJoin('key_package', (join) =>
      join
        .onRef('key_package.owner_did', '=', 'device.user_did')
        .onRef('key_package.device_id', '=', 'device.device_id')
        .on(sql<boolean>`key_package.consumed_at IS NULL AND NOT key_package.last_resort`)
        .on(sql<boolean>`key_package.expires_at > now()`),
    )
    .select([
      'device.device_id',
      'device.device_uuid',
      'device.name',
      'device.created_at',
      'device.last_seen_at',
      sql<number>`count(key_package.id)::int`.as('key_packages'),
    ])
    .where('device.user_did', '=', user)
    .groupBy(['device.user_did', 'device.device_id'])
    .orderBy('device.last_seen_at', 'desc')
    .orderBy('device.device_id')
    .execute()
  return rows.map((row) => ({
    deviceId: row.device_id,
    deviceName: row.name,
    ...(row.device_uuid !== null ? { deviceUUID: row.device_uuid } : {}),
    credentialDid: mlsDidOf(user, row.device_id),
    lastSeenAt: iso(row.last_seen_at),
    registeredAt: iso(row.created_at),
    keyPackageCount: row.key_packages,
  }))
}

/**
 * The Welcomes still waiting for a device in these conversations, deleted:
 * it cannot open them (it lost the key packages they name, or is deleted).
 * One statement per conversation, each on its shard; the client falls back
 * to an external commit when getWelcome finds none.
 */
async function withdrawDeviceWelcomes(db: Db, user: string, deviceId: string, convoIds: string[]): Promise<void> {
  for (const convoId of convoIds) {
    await db
      .deleteFrom('welcome_delivery')
      .where('convo_id', '=', convoId)
      .where('recipient_did', '=', user)
      .where('device_id', '=', deviceId)
      .where('state', '<>', 'consumed')
      .execute()
  }
}

/** A device's unused key packages and the device itself, in one statement on the user's shard. */
const deleteStatement = statement(
  'delete_device',
  (v: { user: string; deviceId: string }) => sql<{ key_packages: number; deleted: boolean }>`
    WITH withdrawn AS (
      DELETE FROM key_package WHERE owner_did = ${v.user} AND device_id = ${v.deviceId} AND consumed_at IS NULL
      RETURNING 1
    ), deleted AS (
      DELETE FROM device WHERE user_did = ${v.user} AND device_id = ${v.deviceId} RETURNING 1
    )
    SELECT (SELECT count(*)::int FROM withdrawn) AS key_packages, EXISTS (SELECT FROM deleted) AS deleted`,
)

/**
 * Deletes a device of `user` with its unused key packages (last-resort ones
 * too) and the Welcomes still waiting for it; those of its packages handed
 * out stay, as a Welcome may name them (they are history, and no longer
 * the device's to use). The Welcomes go first: a deletion that failed
 * midway is repeated whole.
 */
export async function deleteDevice(
  db: Db,
  args: { user: string; device: Device; welcomeRetentionDays: number },
): Promise<{ deleted: boolean; keyPackagesDeleted: number }> {
  const { user, device } = args
  const convoIds = await welcomeConvosOfDevice(db, {
    owner: user,
    deviceId: device.deviceId,
    held: [],
    retentionDays: args.welcomeRetentionDays,
  })
  await withdrawDeviceWelcomes(db, user, device.deviceId, convoIds)
  await cancelPendingAdditions(db, { userDid: user, deviceId: device.deviceId })
  const [row] = (await execute(db, deleteStatement, { user, deviceId: device.deviceId })).rows
  const { key_packages, deleted } = row as { key_packages: number; deleted: boolean }
  return { deleted, keyPackagesDeleted: key_packages }
}

/**
 * A device's key packages reconciled with those it holds (`held`, their
 * refs): the unused ones it no longer holds are withdrawn, and the Welcomes
 * waiting for it that name a package it no longer holds are deleted (it
 * could not open them).
 */
export async function syncDeviceKeyPackages(
  db: Db,
  args: { user: string; device: Device; held: Buffer[]; welcomeRetentionDays: number },
): Promise<{ withdrawn: string[]; remaining: string[]; remainingAvailable: number }> {
  const { user, device, held } = args
  const result = await withdrawUnheldKeyPackages(db, { owner: user, deviceId: device.deviceId, held })
  const convoIds = await welcomeConvosOfDevice(db, {
    owner: user,
    deviceId: device.deviceId,
    held,
    retentionDays: args.welcomeRetentionDays,
  })
  await withdrawDeviceWelcomes(db, user, device.deviceId, convoIds)
  return result
}

/**
 * The conversations `user` is a current member of, by their MLS group ids,
 * each with whether `device` is in its group as far as the server knows
 * (a member_device row: a Welcome naming its key package admitted it, or
 * its own external commit brought it in); without a device, nothing is
 * said of it.
 */
export async function expectedConversations(
  db: Db,
  args: { user: string; device: Device | undefined },
): Promise<GetExpectedConversations.ExpectedConversation[]> {
  const rows = await db
    .selectFrom('member')
    .innerJoin('convo', 'convo.id', 'member.convo_id')
    .innerJoin('member as current', (join) =>
      join.onRef('current.convo_id', '=', 'convo.id').on('current.left_at', 'is', null),
    )
    .select(['convo.id', 'convo.group_id', 'convo.name', 'convo.last_message_at'])
    .select(sql<number>`count(current.did)::int`.as('members'))
    .where('member.did', '=', args.user)
    .where('member.left_at', 'is', null)
    .groupBy(['convo.id', 'convo.group_id', 'convo.name', 'convo.last_message_at'])
    .orderBy('convo.group_id')
    .execute()
  const { device } = args
  const joined =
    device && rows.length
      ? await db
          .selectFrom('member_device')
          .select('convo_id')
          .where(
            'convo_id',
            'in',
            rows.map((row) => row.id),
          )
          .where('user_did', '=', args.user)
          .where('device_id', '=', device.deviceId)
          .execute()
      : []
  const inGroup = new Set(joined.map((row) => row.convo_id))
  return rows.map((row) => ({
    convoId: row.group_id.toLowerCase(),
    name: row.name ?? '',
    memberCount: row.members,
    shouldBeInGroup: true,
    ...(row.last_message_at ? { lastActivity: iso(row.last_message_at) } : {}),
    ...(device ? { deviceInGroup: inGroup.has(row.id) } : {}),
  }))
}

const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`

/**
 * A device's standing, from what the server knows (validateDeviceState):
 * the user's conversations and those whose group the device is known to be
 * in (expectedConversations), what is on the way to it (a Welcome not
 * fetched yet, a pending addition), its unused key packages against
 * `target`, and whether its user opted out. Without a device (the user has
 * none, or several and names none), the user's: its Welcomes waiting and
 * all its key packages. The device that created a group is one the server
 * cannot see (its own leaf comes with no Welcome): a conversation the user
 * created is not counted against its devices.
 */
export async function deviceState(
  db: Db,
  args: { user: string; device: Device | undefined; target: number },
): Promise<ValidateDeviceState.Output> {
  const { user, device, target } = args
  // Each read goes from the user's memberships to the conversations' own rows (their shard keys).
  const ofTheirConvos = () =>
    db
      .selectFrom('member')
      .innerJoin('convo', 'convo.id', 'member.convo_id')
      .select('convo.group_id')
      .distinct()
      .where('member.did', '=', user)
      .where('member.left_at', 'is', null)
  const [conversations, created, welcomes, pending, optedOut, available] = await Promise.all([
    expectedConversations(db, { user, device }),
    ofTheirConvos().where('convo.creator_did', '=', user).execute(),
    ofTheirConvos()
      .innerJoin('welcome_delivery as w', (join) =>
        join.onRef('w.convo_id', '=', 'member.convo_id').on('w.recipient_did', '=', user),
      )
      .$if(device !== undefined, (qb) => qb.where('w.device_id', 'in', [device?.deviceId ?? '', '']))
      // Not fetched yet (or put back after a failure): one fetched is being processed, or settles by activity.
      .where('w.state', '=', 'available')
      .where(sql<boolean>`w.expires_at > now()`)
      .execute(),
    device
      ? ofTheirConvos()
          .innerJoin('pending_device_addition as a', (join) =>
            join
              .onRef('a.convo_id', '=', 'member.convo_id')
              .on('a.user_did', '=', user)
              .on('a.device_id', '=', device.deviceId),
          )
          .where('a.status', 'in', ['pending', 'in_progress'])
          .execute()
      : [],
    db.selectFrom('opt_out').select('did').where('did', '=', user).executeTakeFirst(),
    device
      ? listDevices(db, user).then((all) => all.find((d) => d.deviceId === device.deviceId)?.keyPackageCount ?? 0)
      : keyPackageStats(db, { owner: user, threshold: target }).then((stats) => stats.available),
  ])
  const groupIds = (rows: Array<{ group_id: string }>) => new Set(rows.map((row) => row.group_id.toLowerCase()))
  const [createdByUser, welcomeWaiting, additionWaiting] = [groupIds(created), groupIds(welcomes), groupIds(pending)]
  const issues: string[] = []
  const recommendations: string[] = []
  const problem = (issue: string, recommendation: string) => {
    issues.push(issue)
    recommendations.push(recommendation)
  }
  const missing = conversations.filter((c) => c.deviceInGroup === false && !createdByUser.has(c.convoId))
  const withWelcome = conversations.filter((c) => welcomeWaiting.has(c.convoId))
  const toBeAdded = missing.filter((c) => !welcomeWaiting.has(c.convoId) && additionWaiting.has(c.convoId))
  const unreached = missing.filter((c) => !welcomeWaiting.has(c.convoId) && !additionWaiting.has(c.convoId)).length
  const whom = device ? 'this device' : 'you'
  if (withWelcome.length) {
    problem(
      `A Welcome is waiting for ${whom} in ${plural(withWelcome.length, 'conversation')}`,
      'Fetch and process it (getWelcome), or join by external commit if it cannot be processed',
    )
  }
  if (toBeAdded.length) {
    problem(
      `${plural(toBeAdded.length, 'conversation waits', 'conversations wait')} for a member to add this device`,
      'Wait for a member to add it (getPendingDeviceAdditions), or join by external commit (getGroupInfo, processExternalCommit)',
    )
  }
  if (unreached) {
    problem(
      `This device is not in the group of ${plural(unreached, 'conversation')} of yours, and nothing is on the way to it`,
      'Join by external commit (getGroupInfo, processExternalCommit); getExpectedConversations lists them',
    )
  }
  if (available < target) {
    problem(
      `${plural(available, 'key package')} available to add ${whom}, fewer than ${target}`,
      'Publish more key packages (publishKeyPackages)',
    )
  }
  if (optedOut) problem('You opted out: no one can add you to a conversation', 'Opt in (optIn) to be added again')
  return {
    isValid: issues.length === 0,
    issues,
    recommendations,
    expectedConvos: conversations.length,
    actualConvos: device ? conversations.length - missing.length : conversations.length - withWelcome.length,
    keyPackageInventory: {
      available,
      target,
      needsReplenishment: available < target,
      ...(device ? { perDeviceCount: available } : {}),
    },
  }
}
