/**
 * Devices' push tokens (registerDeviceToken, unregisterDeviceToken), on
 * their users' shards. A token is one device's within its user: registering
 * it for another of the user's devices moves it there. Several users may
 * register one token (a phone signed in to several accounts): each gets its
 * own pushes, which name the account they are for.
 */
import { sql } from 'kysely'
import type { Db, PushPlatform } from '../db/schema.js'
import { execute, statement } from '../db/statement.js'
import { transact } from '../db/transaction.js'
import { idOfName } from './devices.js'
import { invalidRequest } from './errors.js'

/** The id of one of `did`'s devices, named as devices.ts reads names (id, mlsDid or the client's UUID); read only. */
const ownDevice = statement(
  'own_device_id',
  (v: { did: string; id: string; uuid: string }) => sql<{ device_id: string }>`
    SELECT device_id FROM device
    WHERE user_did = ${v.did} AND (device_id = ${v.id} OR device_uuid = ${v.uuid})
    ORDER BY device_id = ${v.id} DESC LIMIT 1`,
)

/**
 * The id of the caller's registered device (registerDevice) that a client
 * names, by its id, its mlsDid or its UUID; 400 DeviceNotFound when the caller
 * has none of that name. A read only: sendMessage names it on every send.
 */
export async function ownDeviceId(db: Db, did: string, name: string): Promise<string> {
  const [row] = (await execute(db, ownDevice, { did, id: idOfName(did, name), uuid: name })).rows
  if (!row) {
    throw invalidRequest('DeviceNotFound', `deviceId ${name} is not a device you registered (registerDevice)`)
  }
  return row.device_id
}

const PLATFORMS: readonly PushPlatform[] = ['ios', 'android', 'web']

/** An APNs device token as the path of a request takes it: 16 to 100 bytes, in hex (lowercase when stored). */
const TOKEN = /^(?:[0-9a-fA-F]{2}){16,100}$/

export interface PushTokenRegistration {
  did: string
  deviceId: string
  token: string
  platform?: string | undefined
  /** The device's name, when the client gives it again. */
  deviceName?: string | undefined
}

/** Stores a device's push token, replacing its previous one, and takes it from any other device of the user. */
export async function registerPushToken(db: Db, args: PushTokenRegistration): Promise<void> {
  if (!TOKEN.test(args.token)) {
    throw invalidRequest(undefined, 'pushToken must be a device token in hex (16 to 100 bytes)')
  }
  const platform = (args.platform ?? 'ios') as PushPlatform
  if (!PLATFORMS.includes(platform)) {
    throw invalidRequest(undefined, `platform must be one of ${PLATFORMS.join(', ')}`)
  }
  if (args.deviceName !== undefined && (args.deviceName.length === 0 || args.deviceName.length > 100)) {
    throw invalidRequest(undefined, 'deviceName must be 1 to 100 characters long')
  }
  const token = args.token.toLowerCase()
  await transact(db, async (trx) => {
    const deviceId = await ownDeviceId(trx, args.did, args.deviceId)
    await trx
      .updateTable('device')
      .set((eb) => ({ name: args.deviceName ?? eb.ref('name'), last_seen_at: sql<Date>`now()` }))
      .where('user_did', '=', args.did)
      .where('device_id', '=', deviceId)
      .execute()
    await trx
      .deleteFrom('push_token')
      .where('user_did', '=', args.did)
      .where('token', '=', token)
      .where('device_id', '<>', deviceId)
      .execute()
    await trx
      .insertInto('push_token')
      .values({ user_did: args.did, device_id: deviceId, token, platform })
      .onConflict((oc) =>
        oc.columns(['user_did', 'device_id']).doUpdateSet((eb) => ({
          token: eb.ref('excluded.token'),
          platform: eb.ref('excluded.platform'),
          // The new row's (its default, now): Citus takes no function here.
          registered_at: eb.ref('excluded.registered_at'),
        })),
      )
      .execute()
  })
}

/** Forgets a device's push token (none stored: nothing to do). */
export async function unregisterPushToken(db: Db, args: { did: string; deviceId: string }): Promise<void> {
  const deviceId = await ownDeviceId(db, args.did, args.deviceId)
  await db.deleteFrom('push_token').where('user_did', '=', args.did).where('device_id', '=', deviceId).execute()
}
