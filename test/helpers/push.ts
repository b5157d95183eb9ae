/**
 * Push notifications in tests: devices with push tokens, a server whose push
 * goes to the local APNs stand-in (apns-server.ts), and its push worker.
 */
import { randomBytes, randomUUID } from 'node:crypto'
import { writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import type { Db } from '../../src/db/schema.js'
import { NSID } from '../../src/lexicon/types/index.js'
import { PushWorker, pushSetup } from '../../src/workers/push.js'
import type { TestApnsServer, TestSigningKey } from './apns-server.js'
import type { TestApp } from './app.js'
import type { TestUser } from './users.js'

/** A device token as APNs gives them: 32 bytes, hex. */
export const deviceToken = () => randomBytes(32).toString('hex')

/**
 * A registered device of `did`, as registerDevice stores one. Written
 * straight into the device table until registerDevice is served; then
 * this calls it.
 */
export async function insertDevice(db: Db, did: string, deviceId: string = randomUUID()): Promise<string> {
  await db
    .insertInto('device')
    .values({
      user_did: did,
      device_id: deviceId,
      name: 'test phone',
      signature_public_key: randomBytes(32),
      mls_signature_key: randomBytes(32),
    })
    .execute()
  return deviceId
}

/** A device of `user` with a push token registered through registerDeviceToken: its id and token. */
export async function deviceWithToken(t: TestApp, user: TestUser): Promise<{ deviceId: string; token: string }> {
  const deviceId = await insertDevice(t.ctx.db, user.did)
  const token = deviceToken()
  const res = await t.call(user, NSID.registerDeviceToken, { input: { deviceId, pushToken: token } })
  if (res.status !== 200) throw new Error(`registerDeviceToken: ${res.status} ${JSON.stringify(res.body)}`)
  return { deviceId, token }
}

/** Writes a .p8 signing key to a file of its own, as an operator keeps it (mode 600). */
export async function signingKeyFile(key: TestSigningKey): Promise<string> {
  const file = path.join(os.tmpdir(), `catbird-apns-key-${randomUUID()}.p8`)
  await writeFile(file, key.pem, { mode: 0o600 })
  return file
}

/** The configuration that points push at the test APNs server, polling and retrying fast. */
export async function pushConfig(
  apns: TestApnsServer,
  key: TestSigningKey,
  extra: Record<string, string> = {},
): Promise<Record<string, string>> {
  return {
    APNS_KEY_FILE: await signingKeyFile(key),
    APNS_KEY_ID: key.keyId,
    APNS_TEAM_ID: key.teamId,
    APNS_TOPIC: apns.topic,
    APNS_ENDPOINT: apns.origin,
    PUSH_POLL_INTERVAL_MS: '20',
    PUSH_RETRY_BASE_MS: '20',
    ...extra,
  }
}

/** The app's push worker, started, trusting the test server's CA. */
export function startPushWorker(t: TestApp, apns: TestApnsServer): PushWorker {
  const setup = pushSetup(t.ctx.config)
  if (!setup) throw new Error('push is not configured for this app')
  return new PushWorker(t.ctx, t.app.log, setup, { ca: [apns.ca] }).start()
}
