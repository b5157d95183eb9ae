import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  cursorKey,
  FileCursorStore,
  MlsClient,
  SubscriptionError,
  XrpcClientError,
  type ConvoEvent,
  type ConvoEventSubscription,
} from '../../src/client/index.js'
import { Arrivals, startTcpProxy, startTestApp, type TcpProxy, type TestApp, TestUser } from '../helpers/index.js'

let t: TestApp
let proxy: TcpProxy
let dir: string

beforeAll(async () => {
  t = await startTestApp()
  proxy = await startTcpProxy(t.url)
  dir = await mkdtemp(path.join(tmpdir(), 'mls-client-subscription-'))
})
afterAll(async () => {
  await proxy?.close()
  await t?.close()
  if (dir) await rm(dir, { recursive: true, force: true })
})

const clientOf = (user: TestUser, cursorFile: string) =>
  new MlsClient({
    serviceUrl: proxy.url,
    token: (nsid) => user.token(nsid),
    cursorStore: new FileCursorStore(path.join(dir, cursorFile)),
    retry: { baseDelayMs: 20, maxDelayMs: 200, maxAttempts: 30 },
  })

/** Cursor 0 kept for `convoId` (all conversations without one): the first connection starts from the log's beginning. */
async function fromStart(client: MlsClient, convoId?: string) {
  const key = cursorKey(convoId)
  await client.cursorStore.put(key, { key, cursor: '0', savedAt: new Date().toISOString() })
  return client
}

/** Iterates a subscription in the background; `until` waits for what has arrived to satisfy a predicate. */
function consume(subscription: ConvoEventSubscription) {
  const arrivals = new Arrivals<ConvoEvent>((events) => `${events.length} events: ${JSON.stringify(seqs(events))}`)
  const done = (async () => {
    for await (const event of subscription) arrivals.push(event)
  })()
  const until = (predicate: (events: ConvoEvent[]) => boolean) => arrivals.waitFor(predicate, 30_000)
  return { events: arrivals.items, done, until }
}

const seqs = (events: ConvoEvent[]) =>
  events.flatMap((e) => (e.$type === 'blue.catbird.mls.subscribeConvoEvents#messageEvent' ? [e.message.seq] : []))

describe('the SDK subscription', () => {
  it('gets every message once across cut connections and a restart, from the cursor it keeps in a file', async () => {
    const [alice, bob] = await Promise.all([TestUser.create(), TestUser.create()])
    const convo = await t.seed.createConvo(alice, [bob])
    const abort = new AbortController()
    const bobs = await fromStart(clientOf(bob, 'bob.cursors.json'), convo.id)
    const first = consume(bobs.subscribe({ convoId: convo.id, signal: abort.signal }))
    await first.until((events) => events.length === 2) // the members' joining
    for (let round = 0; round < 4; round++) {
      for (let i = 0; i < 15; i++) await t.seed.sendMessage(alice, convo.id)
      await first.until((events) => seqs(events).length > round * 15)
      proxy.cut()
    }
    await first.until((events) => seqs(events).length === 60)
    abort.abort()
    await first.done
    expect(seqs(first.events)).toEqual(Array.from({ length: 60 }, (_, i) => i + 1))
    const saved = JSON.parse(await readFile(path.join(dir, 'bob.cursors.json'), 'utf8')) as Record<
      string,
      { cursor: string }
    >
    expect(saved[cursorKey(convo.id)]?.cursor).toBe(first.events.at(-1)?.cursor)

    // A new process with the same file: what came meanwhile, and nothing before.
    for (let i = 0; i < 5; i++) await t.seed.sendMessage(alice, convo.id)
    const restarted = new AbortController()
    const second = consume(clientOf(bob, 'bob.cursors.json').subscribe({ convoId: convo.id, signal: restarted.signal }))
    await t.seed.sendMessage(alice, convo.id)
    await second.until((events) => seqs(events).includes(66))
    restarted.abort()
    await second.done
    expect(seqs(second.events)).toEqual([61, 62, 63, 64, 65, 66])
  }, 90_000)

  it('relays typing, and ends with the refusal when the caller is not a member', async () => {
    const [alice, bob, eve] = await Promise.all([TestUser.create(), TestUser.create(), TestUser.create()])
    const convo = await t.seed.createConvo(alice, [bob])
    const abort = new AbortController()
    const alices = (await fromStart(clientOf(alice, 'alice.cursors.json'))).subscribe({ signal: abort.signal })
    const bobsClient = await fromStart(clientOf(bob, 'bob-typing.cursors.json'), convo.id)
    const bobs = consume(bobsClient.subscribe({ convoId: convo.id, signal: abort.signal }))
    const alicesEvents = consume(alices)
    await alicesEvents.until((events) => events.length === 2)
    await bobs.until((events) => events.length === 2)
    expect(alices.typing(convo.id, true)).toBe(true)
    await bobs.until((events) => events.some((e) => e.$type === 'blue.catbird.mls.subscribeConvoEvents#typingEvent'))
    abort.abort()
    await Promise.all([bobs.done, alicesEvents.done])

    const refused = consume(clientOf(eve, 'eve.cursors.json').subscribe({ convoId: convo.id }))
    const error = await refused.done.catch((err: unknown) => err)
    expect(error).toBeInstanceOf(XrpcClientError)
    expect(error).toMatchObject({ error: 'NotMember' })

    // A cursor the server never gave: the subscription ends with FutureCursor.
    const store = new FileCursorStore(path.join(dir, 'forged.cursors.json'))
    await store.put('*', { key: '*', cursor: '999999999', savedAt: new Date().toISOString() })
    const forged = new MlsClient({ serviceUrl: t.url, token: (nsid) => alice.token(nsid), cursorStore: store })
    const ended = await consume(forged.subscribe()).done.catch((err: unknown) => err)
    expect(ended).toBeInstanceOf(SubscriptionError)
    expect(ended).toMatchObject({ error: 'FutureCursor' })
  })
})
