/**
 * Push notifications in tests: devices with push tokens, a server whose push
 * goes to the local APNs stand-in (apns-server.ts), and its push worker.
 */
import { randomBytes, randomUUID } from 'node:crypto'
import { writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { sql } from 'kysely'
import type { Db } from '../../src/db/schema.js'
import { NSID } from '../../src/lexicon/types/index.js'
import { PushWorker, pushSetup } from '../../src/workers/push.js'
import { startTestApnsServer, testSigningKey, type TestApnsServer, type TestSigningKey } from './apns-server.js'
import { startTestApp, type TestApp } from './app.js'
import { TestDevice } from './devices.js'
import type { TestUser } from './users.js'
import type { XrpcCall } from './xrpc.js'

/** A device token as APNs gives them: 32 bytes, hex. */
export const deviceToken = () => randomBytes(32).toString('hex')

/** A device of `user` registered as the iOS client registers one (registerDevice, real key packages): its id. */
export async function registeredDevice(api: { call: XrpcCall }, user: TestUser, keyPackages = 1): Promise<string> {
  const device = await TestDevice.of(user)
  const res = await api.call(user, NSID.registerDevice, {
    input: device.registration(await device.keyPackages(keyPackages)),
  })
  if (res.status !== 200) throw new Error(`registerDevice: ${res.status} ${JSON.stringify(res.body)}`)
  return res.body.deviceId
}

/** A device of `user` (registerDevice) with a push token registered through registerDeviceToken: its id and token. */
export async function deviceWithToken(
  api: { call: XrpcCall },
  user: TestUser,
  keyPackages = 1,
): Promise<{ deviceId: string; token: string }> {
  const deviceId = await registeredDevice(api, user, keyPackages)
  const token = deviceToken()
  const res = await api.call(user, NSID.registerDeviceToken, { input: { deviceId, pushToken: token } })
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
function startPushWorker(t: TestApp, apns: TestApnsServer): PushWorker {
  const setup = pushSetup(t.ctx.config)
  if (!setup) throw new Error('push is not configured for this app')
  return new PushWorker(t.ctx, t.app.log, setup, { ca: [apns.ca] }).start()
}

/** Resolves once no push waits (queued or to be retried): every push queued so far went through a pass that ended. */
export async function pushQueueDrained(db: Db, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const { rows } = await sql<{ n: number }>`
      SELECT ((SELECT count(*) FROM push_outbox) + (SELECT count(*) FROM push_retry))::int AS n`.execute(db)
    if (rows[0]?.n === 0) return
    if (Date.now() > deadline) throw new Error(`the push queue did not drain in ${timeoutMs} ms`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

/** Servers on one database pushing to one APNs stand-in, and the push workers a test starts on them. */
export interface PushTestBed {
  apns: TestApnsServer
  /** One per configuration given, in order (each on top of pushConfig). */
  apps: TestApp[]
  /** Starts `app`'s push worker; it is stopped with the bed. */
  startWorker(app: TestApp): PushWorker
  close(): Promise<void>
}

export async function startPushTestBed(configs: Array<Record<string, string>> = [{}]): Promise<PushTestBed> {
  const key = testSigningKey()
  const apns = await startTestApnsServer({ key })
  const apps: TestApp[] = []
  for (const extra of configs) {
    apps.push(
      await startTestApp({
        config: await pushConfig(apns, key, extra),
        ...(apps[0] ? { testDb: apps[0].testDb } : {}),
      }),
    )
  }
  const workers: PushWorker[] = []
  return {
    apns,
    apps,
    startWorker(app) {
      const worker = startPushWorker(app, apns)
      workers.push(worker)
      return worker
    },
    async close() {
      await Promise.all(workers.map((w) => w.stop()))
      for (const app of apps.reverse()) await app.close()
      await apns.close()
    },
  }
}
