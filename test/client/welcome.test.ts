import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  FilePendingStore,
  FileWelcomeStore,
  MlsClient,
  WelcomeAlreadyConsumedError,
  XrpcClientError,
  type WelcomeStore,
} from '../../src/client/index.js'
import { encodeBase64, NSID, startTestApp, type TestApp, TestUser, welcomeOf } from '../helpers/index.js'

let t: TestApp
let alice: TestUser
let dir: string

beforeAll(async () => {
  t = await startTestApp()
  alice = await TestUser.create()
  dir = await mkdtemp(path.join(tmpdir(), 'mls-client-welcome-'))
})
afterAll(async () => {
  await t?.close()
  if (dir) await rm(dir, { recursive: true, force: true })
})

/** A conversation created by alice with a new member invited, and the Welcome's bytes. */
async function invite() {
  const bob = await TestUser.create()
  const convo = await t.seed.createConvo(alice, [bob])
  return { bob, convoId: convo.id, welcome: Buffer.from(welcomeOf(convo.id)) }
}

const clientOf = (user: TestUser, welcomeStore?: WelcomeStore) =>
  new MlsClient({
    serviceUrl: t.url,
    token: (nsid) => user.token(nsid),
    retry: { maxAttempts: 1 },
    ...(welcomeStore ? { welcomeStore } : {}),
  })

const delivery = (convoId: string, did: string) =>
  t.ctx.db
    .selectFrom('welcome_delivery')
    .select(['state', 'consumed_via', 'fetch_count', 'failure_count', 'last_error'])
    .where('convo_id', '=', convoId)
    .where('recipient_did', '=', did)
    .executeTakeFirstOrThrow()

describe('joining from a Welcome', () => {
  it('stores the Welcome before processing it, confirms, then forgets the copy', async () => {
    const { bob, convoId, welcome } = await invite()
    const sdk = clientOf(bob)
    const received: Buffer[] = []
    await sdk.joinFromWelcome(convoId, async (bytes) => {
      received.push(Buffer.from(bytes))
      // Persisted before processing, while the server holds it in flight.
      expect(await sdk.welcomeStore.get(convoId)).toMatchObject({ convoId, welcome: encodeBase64(welcome) })
      expect((await delivery(convoId, bob.did)).state).toBe('in_flight')
    })
    expect(received).toEqual([welcome])
    expect(await delivery(convoId, bob.did)).toMatchObject({ state: 'consumed', consumed_via: 'confirm' })
    expect(await sdk.welcomeStore.list()).toEqual([])
    expect(await sdk.pendingStore.list()).toEqual([])
  })

  it('reports a failed join, rethrows, and retries from the stored copy after a restart', async () => {
    const { bob, convoId, welcome } = await invite()
    const file = path.join(dir, `${convoId}.welcomes.json`)
    const failure = new Error('ratchet tree does not match')
    const thrown = await clientOf(bob, new FileWelcomeStore(file))
      .joinFromWelcome(convoId, async () => {
        throw failure
      })
      .catch((err: unknown) => err)
    expect(thrown).toBe(failure)
    expect(await delivery(convoId, bob.did)).toMatchObject({
      state: 'available',
      fetch_count: 1,
      failure_count: 1,
      last_error: 'ratchet tree does not match',
    })

    // A new process, same file: the copy is used, the server is not asked again.
    const restarted = clientOf(bob, new FileWelcomeStore(file))
    const received: Buffer[] = []
    await restarted.retryFailedWelcome(convoId, async (bytes) => {
      received.push(Buffer.from(bytes))
    })
    expect(received).toEqual([welcome])
    expect(await delivery(convoId, bob.did)).toMatchObject({
      state: 'consumed',
      consumed_via: 'confirm',
      fetch_count: 1,
    })
    expect(await new FileWelcomeStore(file).list()).toEqual([])
  })

  it('keeps the copy while a successful join is unconfirmed; retryPending confirms it and drops the copy', async () => {
    const { bob, convoId } = await invite()
    const pendingFile = path.join(dir, `${convoId}.pending.json`)
    const welcomeFile = path.join(dir, `${convoId}.welcomes.json`)
    // The network fails every confirmation of this first run.
    const cutConfirmations: typeof fetch = (url, init) =>
      String(url).includes('confirmWelcome') ? Promise.reject(new TypeError('fetch failed')) : fetch(url, init)
    const firstRun = new MlsClient({
      serviceUrl: t.url,
      token: (nsid) => bob.token(nsid),
      fetch: cutConfirmations,
      pendingStore: new FilePendingStore(pendingFile),
      welcomeStore: new FileWelcomeStore(welcomeFile),
      retry: { maxAttempts: 2, baseDelayMs: 1 },
    })
    await expect(firstRun.joinFromWelcome(convoId, async () => undefined)).rejects.toMatchObject({
      status: 0,
      error: 'NetworkError',
    })
    expect((await delivery(convoId, bob.did)).state).toBe('in_flight')

    const secondRun = new MlsClient({
      serviceUrl: t.url,
      token: (nsid) => bob.token(nsid),
      pendingStore: new FilePendingStore(pendingFile),
      welcomeStore: new FileWelcomeStore(welcomeFile),
    })
    expect(await secondRun.welcomeStore.list()).toHaveLength(1)
    const outcomes = await secondRun.retryPending()
    expect(outcomes).toMatchObject([{ nsid: NSID.confirmWelcome, ok: true, output: { confirmed: true } }])
    expect(await delivery(convoId, bob.did)).toMatchObject({ state: 'consumed', consumed_via: 'confirm' })
    expect(await secondRun.welcomeStore.list()).toEqual([])
    expect(await secondRun.pendingStore.list()).toEqual([])
  })

  it('re-fetches within the grace period when no copy was stored', async () => {
    const { bob, convoId, welcome } = await invite()
    // Fetched by a device that crashed before storing anything.
    await clientOf(bob).getWelcome({ convoId })
    const received: Buffer[] = []
    await clientOf(bob).retryFailedWelcome(convoId, async (bytes) => {
      received.push(Buffer.from(bytes))
    })
    expect(received).toEqual([welcome])
    expect(await delivery(convoId, bob.did)).toMatchObject({ state: 'consumed', fetch_count: 2 })
  })

  it('says clearly when the Welcome was consumed and no copy is stored', async () => {
    const { bob, convoId } = await invite()
    await clientOf(bob).joinFromWelcome(convoId, async () => undefined)
    const processed: Uint8Array[] = []
    const err = await clientOf(bob)
      .retryFailedWelcome(convoId, async (bytes) => {
        processed.push(bytes)
      })
      .catch((e: unknown) => e)
    expect(err).toBeInstanceOf(WelcomeAlreadyConsumedError)
    expect(err).toMatchObject({ convoId, message: expect.stringContaining('already consumed') })
    expect((err as WelcomeAlreadyConsumedError).cause).toMatchObject({ status: 410, error: 'WelcomeAlreadyConsumed' })
    expect(processed).toEqual([])
  })

  it('stores nothing and processes nothing when there is no Welcome', async () => {
    const carol = await TestUser.create()
    const convo = await t.seed.createConvo(carol)
    const sdk = clientOf(carol)
    const err = await sdk.joinFromWelcome(convo.id, async () => undefined).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(XrpcClientError)
    expect(err).toMatchObject({ status: 404, error: 'WelcomeNotFound' })
    expect(await sdk.welcomeStore.list()).toEqual([])
    expect(await sdk.pendingStore.list()).toEqual([])
  })
})
