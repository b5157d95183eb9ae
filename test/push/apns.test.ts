import { randomUUID } from 'node:crypto'
import { writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { decodeJwt, decodeProtectedHeader } from 'jose'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadConfig } from '../../src/config.js'
import {
  ApnsClient,
  MAX_PAYLOAD_BYTES,
  ProviderToken,
  readSigningKey,
  verdictOf,
  type ApnsNotification,
} from '../../src/push/apns.js'
import { buildPush, MAX_PUSHED_CIPHERTEXT_BYTES, type PushContent } from '../../src/push/payload.js'
import { pushAnnouncement, pushSetup } from '../../src/workers/push.js'
import {
  deviceToken,
  pushConfig,
  signingKeyFile,
  startTestApnsServer,
  testSigningKey,
  type TestApnsServer,
  type TestSigningKey,
} from '../helpers/index.js'

let key: TestSigningKey
let apns: TestApnsServer

beforeAll(async () => {
  key = testSigningKey()
  apns = await startTestApnsServer({ key })
})
afterAll(async () => {
  await apns?.close()
})

const client = (
  opts: { ca?: string[]; now?: () => number; requestTimeoutMs?: number; signing?: TestSigningKey } = {},
) =>
  new ApnsClient({
    signingKey: readSigningKey((opts.signing ?? key).pem),
    keyId: key.keyId,
    teamId: key.teamId,
    topic: apns.topic,
    origin: apns.origin,
    requestTimeoutMs: opts.requestTimeoutMs ?? 5_000,
    ca: 'ca' in opts ? opts.ca : [apns.ca],
    ...(opts.now ? { now: opts.now } : {}),
  })

const notification = (token = deviceToken()): ApnsNotification => ({
  token,
  apnsId: randomUUID(),
  pushType: 'alert',
  priority: 10,
  expiration: Math.floor(Date.now() / 1000) + 3600,
  collapseId: 'c1',
  payload: JSON.stringify({ aps: { alert: 'hi' } }),
})

describe('the APNs client', () => {
  it('posts to /3/device/<token> with the headers APNs reads, and one provider token for every request', async () => {
    const apnsClient = client()
    try {
      const sent = [notification(), notification(), notification()]
      const outcomes = await Promise.all(sent.map((n) => apnsClient.send(n)))
      expect(outcomes).toEqual([{ status: 200 }, { status: 200 }, { status: 200 }])
      const seen = sent.map((n) => apns.requests.find((r) => r.apnsId === n.apnsId)!)
      expect(seen.map((r) => r.token)).toEqual(sent.map((n) => n.token))
      expect(seen[0]!.headers).toEqual({
        'apns-id': sent[0]!.apnsId,
        'apns-topic': apns.topic,
        'apns-push-type': 'alert',
        'apns-priority': '10',
        'apns-expiration': String(sent[0]!.expiration),
        'apns-collapse-id': 'c1',
      })
      // Made once and reused (Apple refuses tokens renewed more often than every 20 minutes).
      expect(new Set(seen.map((r) => r.jwt)).size).toBe(1)
      const jwt = seen[0]!.jwt
      expect(decodeProtectedHeader(jwt)).toEqual({ alg: 'ES256', kid: key.keyId })
      expect(decodeJwt(jwt)).toEqual({ iss: key.teamId, iat: expect.any(Number) })
    } finally {
      apnsClient.close()
    }
  })

  it('replaces its provider token once it is 40 minutes old: APNs refuses one older than an hour', async () => {
    let now = Date.now() - 2 * 3_600_000
    const apnsClient = client({ now: () => now })
    try {
      const stale = await apnsClient.send(notification())
      expect(stale).toEqual({ status: 403, reason: 'ExpiredProviderToken' })
      expect(verdictOf(stale)).toBe('retry')
      now = Date.now()
      expect(await apnsClient.send(notification())).toEqual({ status: 200 })
    } finally {
      apnsClient.close()
    }
  })

  it('answers APNs’s refusal as APNs gave it: a key APNs does not know is 403 InvalidProviderToken, dropped', async () => {
    const apnsClient = client({ signing: testSigningKey() })
    try {
      const outcome = await apnsClient.send(notification())
      expect(outcome).toEqual({ status: 403, reason: 'InvalidProviderToken' })
      expect(verdictOf(outcome)).toBe('drop')
    } finally {
      apnsClient.close()
    }
  })

  it('trusts only certificate authorities it is given (the system’s and NODE_EXTRA_CA_CERTS by default)', async () => {
    const untrusting = client({ ca: undefined })
    try {
      const outcome = await untrusting.send(notification())
      expect(outcome.status).toBe(0)
      expect(outcome.reason).toMatch(/certificate/i)
      expect(verdictOf(outcome)).toBe('retry')
    } finally {
      untrusting.close()
    }
  })

  it('a request unanswered in time counts as not sent; a closed connection is opened again', async () => {
    const apnsClient = client({ requestTimeoutMs: 200 })
    try {
      apns.hold()
      const outcome = await apnsClient.send(notification())
      expect(outcome).toEqual({ status: 0, reason: 'no answer in time' })
      apns.release()
      expect(await apnsClient.send(notification())).toEqual({ status: 200 })
      apns.disconnect()
      expect(await apnsClient.send(notification())).toEqual({ status: 200 })
    } finally {
      apns.release()
      apnsClient.close()
    }
  })

  it('says what each answer calls for, as Apple’s documentation does', () => {
    expect(verdictOf({ status: 200 })).toBe('sent')
    expect(verdictOf({ status: 410, reason: 'Unregistered' })).toBe('clear-token')
    expect(verdictOf({ status: 410, reason: 'ExpiredToken' })).toBe('clear-token')
    expect(verdictOf({ status: 400, reason: 'BadDeviceToken' })).toBe('clear-token')
    expect(verdictOf({ status: 429, reason: 'TooManyRequests' })).toBe('retry')
    expect(verdictOf({ status: 500, reason: 'InternalServerError' })).toBe('retry')
    expect(verdictOf({ status: 503, reason: 'ServiceUnavailable' })).toBe('retry')
    expect(verdictOf({ status: 0, reason: 'closed' })).toBe('retry')
    expect(verdictOf({ status: 400, reason: 'BadCollapseId' })).toBe('drop')
    expect(verdictOf({ status: 413, reason: 'PayloadTooLarge' })).toBe('drop')
    expect(verdictOf({ status: 400, reason: 'DeviceTokenNotForTopic' })).toBe('drop')
  })
})

describe('the provider token', () => {
  it('is reused until 40 minutes old, and replaced after APNs says it expired only if 20 minutes old', async () => {
    let now = 1_700_000_000_000
    const token = new ProviderToken(readSigningKey(key.pem), key.keyId, key.teamId, () => now)
    const first = await token.get()
    now += 39 * 60_000
    expect(await token.get()).toBe(first)
    now += 2 * 60_000
    const second = await token.get()
    expect(second).not.toBe(first)
    expect(decodeJwt(second).iat).toBe(Math.floor(now / 1000))
    // Replaced on APNs's word only when replacing it is allowed.
    now += 10 * 60_000
    await token.expired(second)
    expect(await token.get()).toBe(second)
    now += 10 * 60_000
    await token.expired(second)
    expect(await token.get()).not.toBe(second)
  })
})

describe('what a push says', () => {
  const message = (ciphertext?: Uint8Array, kind: 'message' | 'commit' = 'message'): PushContent => ({
    kind,
    convoId: 'a'.repeat(32),
    groupId: 'b'.repeat(32),
    messageId: randomUUID(),
    seq: 12,
    epoch: 3,
    recipient: 'did:plc:abcdefghijklmnopqrstuvwx',
    ...(ciphertext ? { ciphertext } : {}),
  })
  const options = { mode: 'message', recipientKey: 'did' } as const

  it('carries the ciphertext exactly when the whole payload stays within 4096 bytes', () => {
    const bare = Buffer.byteLength(buildPush(message(), options).payload)
    // Base64 of n bytes takes 4·⌈n/3⌉, with `,"ciphertext":""` around it.
    const room = MAX_PAYLOAD_BYTES - bare - ',"ciphertext":""'.length
    const largest = Math.floor(room / 4) * 3
    const fits = buildPush(message(new Uint8Array(largest)), options)
    expect(JSON.parse(fits.payload)).toHaveProperty('ciphertext')
    expect(Buffer.byteLength(fits.payload)).toBeLessThanOrEqual(MAX_PAYLOAD_BYTES)
    const over = buildPush(message(new Uint8Array(largest + 1)), options)
    expect(JSON.parse(over.payload)).not.toHaveProperty('ciphertext')
    expect(Object.keys(JSON.parse(over.payload))).toEqual(
      Object.keys(JSON.parse(buildPush(message(), options).payload)),
    )
    // Nothing longer than what could ever fit is read from the database.
    expect(largest).toBeLessThanOrEqual(MAX_PUSHED_CIPHERTEXT_BYTES)
  })

  it('names the account by the SHA-256 of its DID when configured so', () => {
    const payload = JSON.parse(buildPush(message(), { mode: 'message', recipientKey: 'sha256' }).payload)
    expect(payload).not.toHaveProperty('recipient_did')
    // sha256("did:plc:abcdefghijklmnopqrstuvwx"), hex, as the extension computes it.
    expect(payload.recipient_account).toMatch(/^[0-9a-f]{64}$/)
  })

  it('a commit, when pushed, is a background push with no alert and no ciphertext', () => {
    const built = buildPush(message(new Uint8Array(10), 'commit'), options)
    expect(built).toMatchObject({ pushType: 'background', priority: 5, collapseId: 'a'.repeat(32) })
    const payload = JSON.parse(built.payload)
    expect(payload.aps).toEqual({ 'content-available': 1 })
    expect(payload).toMatchObject({ type: 'mls_commit', convo_id: 'b'.repeat(32), seq: 12, epoch: 3 })
    expect(payload).not.toHaveProperty('ciphertext')
  })

  it('in wake mode names nothing: a generic alert, one collapse id for all', () => {
    const wake = { mode: 'wake', recipientKey: 'did' } as const
    const pushes = [
      buildPush(message(new Uint8Array(10)), wake),
      buildPush({ kind: 'welcome', convoId: 'c', groupId: 'd', recipient: 'did:plc:x' }, wake),
    ]
    for (const built of pushes) {
      expect(JSON.parse(built.payload)).toEqual({
        aps: { alert: { title: 'New Message', body: 'You have something new' }, sound: 'default' },
      })
      expect(built.collapseId).toBe('wake')
    }
    expect(JSON.parse(buildPush(message(undefined, 'commit'), wake).payload)).toEqual({
      aps: { 'content-available': 1 },
    })
  })
})

describe('push configuration', () => {
  it('takes all four APNs settings or none, naming what is missing', () => {
    expect(() => loadConfig({ APNS_KEY_FILE: '/k.p8', APNS_TOPIC: 'app' })).toThrow(
      /APNS_KEY_ID: is needed with APNS_KEY_FILE, APNS_TOPIC[\s\S]*APNS_TEAM_ID: is needed/,
    )
    expect(() => loadConfig({ APNS_KEY_ID: 'short' })).toThrow(/APNS_KEY_ID: must be the 10-character id/)
    expect(pushSetup(loadConfig({}))).toBeUndefined()
    expect(pushAnnouncement(undefined)[1]).toMatch(/^push notifications off/)
  })

  it('reads the signing key at start-up, and stops there when it cannot be used', async () => {
    const garbage = path.join(os.tmpdir(), `catbird-apns-key-${randomUUID()}.p8`)
    await writeFile(garbage, 'not a key')
    const settings = { APNS_KEY_ID: key.keyId, APNS_TEAM_ID: key.teamId, APNS_TOPIC: 'app' }
    for (const file of [garbage, '/nonexistent/AuthKey.p8']) {
      expect(() => pushSetup(loadConfig({ ...settings, APNS_KEY_FILE: file }))).toThrow(/APNS_KEY_FILE/)
    }
    const good = { ...settings, APNS_KEY_FILE: await signingKeyFile(key) }
    expect(pushSetup(loadConfig(good))?.apns.origin).toBe('https://api.sandbox.push.apple.com')
    expect(pushSetup(loadConfig({ ...good, APNS_PRODUCTION: 'true' }))?.apns.origin).toBe('https://api.push.apple.com')
    const configured = pushSetup(loadConfig(await pushConfig(apns, key)))
    expect(configured?.apns.origin).toBe(apns.origin)
    expect(pushAnnouncement(configured)[1]).toBe(`push notifications on: APNs at ${apns.origin} for ${apns.topic}`)
  })
})
