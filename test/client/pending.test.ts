import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  FilePendingStore,
  MemoryPendingStore,
  MlsClient,
  XrpcClientError,
  type MlsClientOptions,
} from '../../src/client/index.js'
import {
  countRows,
  encodeBase64,
  epochOf,
  keyPackage,
  message,
  NSID,
  refusingUrl,
  startFaultProxy,
  startTestApp,
  SUITE,
  type TestApp,
  TestUser,
  withSlowClaims,
} from '../helpers/index.js'

let t: TestApp
let alice: TestUser
let dir: string

beforeAll(async () => {
  t = await startTestApp()
  alice = await TestUser.create()
  dir = await mkdtemp(path.join(tmpdir(), 'mls-client-pending-'))
})
afterAll(async () => {
  await t?.close()
  if (dir) await rm(dir, { recursive: true, force: true })
})

/** Records the waits the client asks for instead of waiting; `onSleep` runs at each. */
function recordingSleep(onSleep: (ms: number) => Promise<void> | void = () => undefined) {
  const sleeps: number[] = []
  const sleep = async (ms: number) => {
    sleeps.push(ms)
    await onSleep(ms)
  }
  return { sleeps, sleep }
}

function client(user: TestUser, opts: Partial<MlsClientOptions> = {}) {
  return new MlsClient({ serviceUrl: t.url, token: (nsid) => user.token(nsid), ...opts })
}

const messagesIn = async (convoId: string) =>
  t.ctx.db.selectFrom('message').select(['id', 'seq', 'epoch', 'ciphertext']).where('convo_id', '=', convoId).execute()

/** A sendMessage input: a new application message of `user`'s, or the one given. */
const sendInput = async (
  user: TestUser,
  convoId: string,
  extra: { ciphertext?: Uint8Array; idempotencyKey?: string } = {},
) => {
  const ciphertext = extra.ciphertext ?? (await message(user, convoId))
  return { convoId, senderDid: user.did, epoch: epochOf(ciphertext), ...extra, ciphertext }
}

describe('pending operations', () => {
  it('a permanent refusal removes the operation and throws it, without retrying', async () => {
    const convo = await t.seed.createConvo(alice)
    const { sleeps, sleep } = recordingSleep()
    const pendingStore = new MemoryPendingStore()
    const sdk = client(alice, { pendingStore, retry: { sleep } })

    const stale = await t.seed.staleMessage(alice, convo.id)
    const stored = await messagesIn(convo.id)
    const mismatch = await sdk
      .sendMessage(await sendInput(alice, convo.id, { ciphertext: stale }))
      .catch((err: unknown) => err)
    expect(mismatch).toBeInstanceOf(XrpcClientError)
    expect(mismatch).toMatchObject({ status: 409, error: 'EpochMismatch', nsid: NSID.sendMessage, permanent: true })

    const stranger = await TestUser.create()
    const notMember = await client(stranger, { pendingStore, retry: { sleep } })
      .sendMessage({ ...(await sendInput(alice, convo.id)), senderDid: stranger.did })
      .catch((err: unknown) => err)
    expect(notMember).toMatchObject({ status: 403, error: 'NotMember', message: expect.any(String) })

    expect(sleeps).toEqual([])
    expect(await pendingStore.list()).toEqual([])
    expect(await messagesIn(convo.id)).toEqual(stored)
  })

  it('resends with the same key after a 409 IdempotencyRequestInProgress, waiting the Retry-After asked', async () => {
    // Another request holds the key: its transaction is open until we abort it.
    await withSlowClaims(t, { waitMs: 50, caller: alice }, async ({ slow, key, groupId, held }) => {
      const { sleeps, sleep } = recordingSleep(() => held.abort())
      const pendingStore = new MemoryPendingStore()
      const sdk = new MlsClient({
        serviceUrl: slow.url,
        token: (nsid) => alice.token(nsid),
        pendingStore,
        retry: { sleep, baseDelayMs: 1, maxDelayMs: 1 },
      })

      const output = await sdk.createConvo({ groupId, cipherSuite: SUITE, idempotencyKey: key })
      // Retry-After: 1 (seconds), not the 1 ms backoff.
      expect(sleeps).toEqual([1000])
      const created = await t.ctx.db.selectFrom('convo').select('id').where('group_id', '=', groupId).execute()
      expect(created).toEqual([{ id: output.id }])
      expect(await pendingStore.list()).toEqual([])
    })
  })

  it('waits the Retry-After of a 429 and keeps the operation pending when attempts run out', async () => {
    const limited = await startTestApp({ testDb: t.testDb, config: { RATE_LIMIT_PER_MINUTE: '1' } })
    try {
      const convo = await limited.seed.createConvo(alice)
      const { sleeps, sleep } = recordingSleep()
      const pendingStore = new MemoryPendingStore()
      const sdk = new MlsClient({
        serviceUrl: limited.url,
        token: (nsid) => alice.token(nsid),
        pendingStore,
        retry: { sleep, maxAttempts: 3, baseDelayMs: 1, maxDelayMs: 1 },
      })

      const input = await sendInput(alice, convo.id)
      const err = await sdk.sendMessage(input).catch((e: unknown) => e)
      expect(err).toMatchObject({ status: 429, error: 'RateLimitExceeded', retryable: true })
      const retryAfter = Number((err as XrpcClientError).headers.get('retry-after'))
      expect(retryAfter).toBeGreaterThan(0)
      expect(sleeps).toHaveLength(2)
      // Whole seconds as the server said, not the 1 ms backoff.
      for (const ms of sleeps) {
        expect(ms % 1000).toBe(0)
        expect(ms).toBeGreaterThanOrEqual(retryAfter * 1000)
        expect(ms).toBeLessThanOrEqual(60_000)
      }

      // Not a refusal: the write stays pending, with its key, for retryPending().
      const [pending, ...more] = await pendingStore.list()
      expect(more).toEqual([])
      expect(pending).toMatchObject({ nsid: NSID.sendMessage, input: { idempotencyKey: pending!.id } })
      expect(await messagesIn(convo.id)).toEqual([])
    } finally {
      await limited.close()
    }
  })

  it('backs off exponentially with full jitter, capped, on network failures', async () => {
    const convo = await t.seed.createConvo(alice)
    const proxy = await startFaultProxy({ target: t.url, faultRate: 1, faults: ['dropRequest'], seed: 1 })
    try {
      const { sleeps, sleep } = recordingSleep()
      const sdk = new MlsClient({
        serviceUrl: proxy.url,
        token: (nsid) => alice.token(nsid),
        retry: { sleep, random: () => 0.5, baseDelayMs: 100, maxDelayMs: 300, maxAttempts: 5 },
      })
      const err = await sdk.sendMessage(await sendInput(alice, convo.id)).catch((e: unknown) => e)
      expect(err).toMatchObject({ status: 0, error: 'NetworkError', retryable: true })
      // Half (the jitter) of 100, 200, 400 -> 300 (the cap), 800 -> 300.
      expect(sleeps).toEqual([50, 100, 150, 150])
      expect(proxy.counts.dropRequest).toBe(5)
      expect(await sdk.pendingStore.list()).toHaveLength(1)
    } finally {
      await proxy.close()
    }
  })

  it('FilePendingStore survives a restart: a new client resumes with the same key and nothing is duplicated', async () => {
    const convo = await t.seed.createConvo(alice)
    const file = path.join(dir, 'restart', 'pending.json')
    // Every response is lost after the server has stored the message.
    const proxy = await startFaultProxy({ target: t.url, faultRate: 1, faults: ['dropResponse'], seed: 2 })
    const input = await sendInput(alice, convo.id)
    try {
      const before = new MlsClient({
        serviceUrl: proxy.url,
        token: (nsid) => alice.token(nsid),
        pendingStore: new FilePendingStore(file),
        retry: { maxAttempts: 3, baseDelayMs: 1, maxDelayMs: 5 },
      })
      await expect(before.sendMessage(input)).rejects.toMatchObject({ status: 0, error: 'NetworkError' })
      expect(proxy.counts.dropResponse).toBe(3)
      expect(proxy.replayed).toBe(2)
    } finally {
      await proxy.close()
    }
    const [stored] = await messagesIn(convo.id)
    expect(await messagesIn(convo.id)).toHaveLength(1)

    const after = client(alice, { pendingStore: new FilePendingStore(file) })
    const [pending] = await after.pendingStore.list()
    expect(pending).toMatchObject({ nsid: NSID.sendMessage, input: { convoId: convo.id, senderDid: alice.did } })
    const outcomes = await after.retryPending()
    expect(outcomes).toEqual([
      {
        nsid: NSID.sendMessage,
        operation: pending,
        ok: true,
        output: { messageId: stored!.id, receivedAt: expect.any(String), seq: stored!.seq, epoch: stored!.epoch },
      },
    ])
    const messages = await messagesIn(convo.id)
    expect(messages).toHaveLength(1)
    expect(Buffer.from(messages[0]!.ciphertext)).toEqual(Buffer.from(input.ciphertext))
    expect(await after.pendingStore.list()).toEqual([])
    expect(JSON.parse(await readFile(file, 'utf8'))).toEqual({})
  })

  it('resumes every kind of write after a restart, keyed or idempotent by nature', async () => {
    const bob = await TestUser.create()
    const convo = await t.seed.createConvo(alice)
    const file = path.join(dir, 'kinds.json')
    const offline = new MlsClient({
      serviceUrl: await refusingUrl(),
      token: (nsid) => alice.token(nsid),
      pendingStore: new FilePendingStore(file),
      retry: { maxAttempts: 1 },
    })
    const adding = await t.seed.prepareCommit(alice, convo.id, { add: [bob] })
    // Made before the writes start: each must have its rejection handler before the next await.
    const ownKeyPackage = encodeBase64(await keyPackage(alice))
    const writes = [
      offline.addMembers({
        convoId: convo.id,
        didList: [bob.did],
        commit: encodeBase64(adding.commit),
        welcomeMessage: encodeBase64(adding.welcome!),
        epoch: adding.epoch,
      }),
      offline.publishKeyPackage({ keyPackage: ownKeyPackage, cipherSuite: SUITE }),
      offline.leaveConvo({ convoId: convo.id, targetDid: bob.did }),
    ]
    for (const write of writes) await expect(write).rejects.toMatchObject({ status: 0, retryable: true })

    const online = client(alice, { pendingStore: new FilePendingStore(file) })
    const outcomes = await online.retryPending()
    expect(outcomes.map((o) => [o.nsid, o.ok]).sort()).toEqual([
      [NSID.addMembers, true],
      [NSID.leaveConvo, true],
      [NSID.publishKeyPackage, true],
    ])
    // Keyed writes carry their key; the others go as they are.
    const keyed = outcomes.filter((o) => o.nsid !== NSID.leaveConvo)
    for (const { operation } of keyed) expect(operation.input.idempotencyKey).toBe(operation.id)
    expect(outcomes.find((o) => o.nsid === NSID.leaveConvo)?.operation.input).not.toHaveProperty('idempotencyKey')
    expect(await online.pendingStore.list()).toEqual([])
    expect(await countRows(t.ctx.db, 'key_package', sql`owner_did = ${alice.did}`)).toBe(1)
  })
})
