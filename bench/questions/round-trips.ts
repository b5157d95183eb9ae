import { randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import {
  bytesJson,
  encodeBase64,
  keyPackage,
  message,
  NSID,
  type PreparedConvo,
  SeedClient,
  SUITE,
  TestUser,
  xrpcClient,
} from '../../test/helpers/index.js'
import type { Xrpc } from '../client.js'
import { atMost, formatCount, table, type Section } from '../report.js'
import type { BenchServer } from '../server.js'
import { log, type Bench } from '../setup.js'

interface RoundTrips {
  endpoint: string
  /** Statements sent on the request's own path, per request. */
  request: number
  /** Transactions the request's path began (a statement that begins with BEGIN), per request. */
  transactions: number
  /** Statements of the request's path inside its transaction (from the one that begins it to the one that ends it), per request. */
  inTransaction: number
  /** Statements the request caused in the background (event fan-out), per request. */
  background: number
}

/** `n` of something made ahead of the counted calls (MLS work, and requests of its own), handed out in order. */
async function madeAhead<T>(n: number, make: () => Promise<T>): Promise<() => T> {
  const made: T[] = []
  for (let i = 0; i < n; i++) made.push(await make())
  return () => {
    const next = made.shift()
    if (next === undefined) throw new Error('made too few ahead')
    return next
  }
}

/** Membership changes: the conversation's row lock is held for the round trips of their transaction. */
const CHANGES = ['createConvo', 'createConvo (key)', 'addMembers', 'addMembers (key)', 'leaveConvo']

/**
 * Database round trips per request of every blue.catbird.mls method (except
 * the event stream), counted by the server process (one per statement sent):
 * `roundTripCalls` sequential calls each, on a server doing nothing else.
 */
export async function countRoundTrips(bench: Bench): Promise<Section> {
  log('round trips per request')
  const { load, server } = bench.small
  await server.run('startQueryCount')
  let counted: RoundTrips[]
  try {
    counted = await countEach(load.api, server, bench.settings.roundTripCalls)
  } finally {
    await server.run('endQueryCount')
  }
  for (const r of counted) {
    console.log(
      `  ${r.endpoint.padEnd(34)} ${r.request} (in its transaction ${r.inTransaction}, background ${r.background})`,
    )
  }
  const trips = (endpoint: string, what: 'request' | 'transactions' | 'inTransaction' = 'request') =>
    counted.find((x) => x.endpoint === endpoint)?.[what] ?? Number.NaN
  return {
    targets: [
      atMost('4. round trips, sendMessage with a fresh key', trips('sendMessage (key)'), 2, 1),
      atMost('4. transactions it holds open across round trips', trips('sendMessage (key)', 'transactions'), 0, 0),
      atMost('4. round trips, sendMessage replayed', trips('sendMessage (replay)'), 1, 1),
      atMost(
        `4. round trips in the conversation's transaction, the most of ${CHANGES.join(', ')}`,
        Math.max(...CHANGES.map((e) => trips(e, 'inTransaction'))),
        4,
        1,
      ),
      {
        measure:
          "4. (for comparison) the same on the request's path: with a Welcome, one more per member added, on its shard",
        figure: Math.max(...CHANGES.map((e) => trips(e))),
        digits: 1,
      },
    ],
    markdown: [
      '### Database round trips per request',
      '',
      "Statements sent to PostgreSQL per request (a string of several statements sent at once counts as one), counted by a hook on the server pool's connections: " +
        "on the request's own path (what its latency waits for), of those the ones inside the transaction it began (from BEGIN to COMMIT: " +
        "the conversation's row lock is held for part of them), and in the background because of it (the event fan-out reading each new message back, " +
        'and the NOTIFY telling other instances; both batched under load). createConvo and addMembers reserve the key packages their Welcome names ' +
        "before their transaction, one statement per member added on the member's shard.",
      '',
      table(
        ['method', "request's path", 'in its transaction', 'transactions begun', 'background'],
        counted.map((x) => [
          x.endpoint,
          formatCount(x.request),
          formatCount(x.inTransaction),
          formatCount(x.transactions),
          formatCount(x.background),
        ]),
      ),
      '',
    ],
  }
}

async function countEach(api: Xrpc, server: BenchServer, calls: number): Promise<RoundTrips[]> {
  const [alice, bob, carol] = await Promise.all([TestUser.create(), TestUser.create(), TestUser.create()])
  const seed = new SeedClient(xrpcClient(api.url))
  /** Calls of one counted method: plain, keyed, replayed (each once more to warm up). */
  const perMethod = 3 * (calls + 1)
  const results: RoundTrips[] = []
  // The event fan-out reads new messages, and notifies other instances, shortly after each commit.
  const settle = () => sleep(100)
  const count = async (endpoint: string, call: (i: number) => Promise<unknown>) => {
    // Tokens are minted and verified outside the count (they cost no queries anyway).
    await call(0)
    await settle()
    const before = await server.run('queries')
    for (let i = 1; i <= calls; i++) await call(i)
    await settle()
    const after = await server.run('queries')
    results.push({
      endpoint,
      request: (after.request - before.request) / calls,
      transactions: (after.transactions - before.transactions) / calls,
      inTransaction: (after.inTransaction - before.inTransaction) / calls,
      background: (after.background - before.background) / calls,
    })
  }
  type Input = Record<string, unknown>
  /** Each write with a fresh key, then each again: the second time it is replayed. */
  const keyed = async (
    nsid: keyof typeof NSID,
    user: TestUser,
    makeInput: () => Input | Promise<Input>,
    write: (input: Input) => Promise<unknown>,
  ) => {
    const inputs: Input[] = []
    await count(`${nsid} (key)`, async () => {
      const input = { ...(await makeInput()), idempotencyKey: randomUUID() }
      inputs.push(input)
      return write(input)
    })
    await count(`${nsid} (replay)`, async (i) => {
      const reply = await api.call(user, NSID[nsid], { input: inputs[i] })
      if (reply.headers.get('idempotent-replayed') !== 'true') throw new Error(`${nsid}: not replayed`)
    })
  }

  const welcomed: string[] = []
  // Prepared MLS groups (bob's key packages claimed ahead), by group id.
  const convos = new Map<unknown, PreparedConvo>()
  const nextConvo = await madeAhead(perMethod, () => seed.prepareConvo(alice, [bob]))
  const newConvo = (): Input => {
    const prepared = nextConvo()
    convos.set(prepared.input.groupId, prepared)
    return { ...prepared.input }
  }
  const createConvo = async (input: Input) => {
    const created = await api.ok<{ id: string }>(alice, NSID.createConvo, { input })
    convos.get(input.groupId)?.created(created)
    welcomed.push(created.id)
  }
  await count('createConvo', () => createConvo(newConvo()))
  await keyed('createConvo', alice, newConvo, createConvo)

  const convoId = welcomed[0] as string
  const nextMessage = await madeAhead(perMethod, () => message(alice, convoId))
  const newMessage = () => {
    const ciphertext = nextMessage()
    return { convoId, senderDid: alice.did, epoch: 1, ciphertext: bytesJson(ciphertext) }
  }
  const send = (input: Input) => api.ok(alice, NSID.sendMessage, { input })
  await count('sendMessage', () => send(newMessage()))
  await keyed('sendMessage', alice, newMessage, send)
  const firstMessage = (
    await api.ok<{ messages: Array<{ id: string }> }>(alice, NSID.getMessages, { params: { convoId, limit: 1 } })
  ).messages[0]?.id as string
  await count('getMessages', () => api.ok(alice, NSID.getMessages, { params: { convoId, limit: 50 } }))
  await count('getMessages (sinceMessage)', () =>
    api.ok(alice, NSID.getMessages, { params: { convoId, limit: 50, sinceMessage: firstMessage } }),
  )
  await count('getEpoch', () => api.ok(alice, NSID.getEpoch, { params: { convoId } }))
  await count('getConvos', () => api.ok(alice, NSID.getConvos, { params: { limit: 50 } }))

  // Membership changes with a real commit each, so the epoch advances every
  // time; each commit is built on the last (no requests: key packages were
  // claimed ahead), and taken for the next once the server accepted it.
  const newcomers = await Promise.all(Array.from({ length: perMethod }, () => TestUser.create()))
  const claimed = await seed.claimKeyPackages(alice, newcomers)
  const added: TestUser[] = []
  let accept = () => {}
  const addOne = async () => {
    const i = added.length
    const user = newcomers[i] as TestUser
    const prepared = await seed.prepareCommit(alice, convoId, {
      add: [user],
      keyPackages: [claimed[i] as Uint8Array],
    })
    accept = () => {
      prepared.accepted()
      added.push(user)
    }
    return {
      convoId,
      didList: [user.did],
      commit: encodeBase64(prepared.commit),
      welcomeMessage: encodeBase64(prepared.welcome as Uint8Array),
      epoch: prepared.epoch,
    }
  }
  const addMembers = async (input: Input) => {
    await api.ok(alice, NSID.addMembers, { input })
    accept()
  }
  await count('addMembers', async () => addMembers(await addOne()))
  await keyed('addMembers', alice, addOne, addMembers)
  await count('getCommits', () => api.ok(alice, NSID.getCommits, { params: { convoId, fromEpoch: 0 } }))
  await count('leaveConvo', async (i) => {
    const removal = await seed.prepareCommit(alice, convoId, { remove: [added[i] as TestUser] })
    await api.ok(alice, NSID.leaveConvo, {
      input: {
        convoId,
        targetDid: (added[i] as TestUser).did,
        commit: encodeBase64(removal.commit),
        epoch: removal.epoch,
      },
    })
    removal.accepted()
  })

  const nextKeyPackage = await madeAhead(perMethod, async () => encodeBase64(await keyPackage(carol)))
  const newKeyPackage = () => ({ keyPackage: nextKeyPackage(), cipherSuite: SUITE })
  const publish = (input: Input) => api.ok(carol, NSID.publishKeyPackage, { input })
  await count('publishKeyPackage', () => publish(newKeyPackage()))
  await keyed('publishKeyPackage', carol, newKeyPackage, publish)
  await count('getKeyPackages', () =>
    api.ok(alice, NSID.getKeyPackages, { params: { dids: [carol.did], cipherSuite: SUITE } }),
  )
  await count('getKeyPackageStats', () => api.ok(carol, NSID.getKeyPackageStats))

  await count('getWelcome', (i) => api.ok(bob, NSID.getWelcome, { params: { convoId: welcomed[i] as string } }))
  await count('confirmWelcome', (i) =>
    api.ok(bob, NSID.confirmWelcome, { input: { convoId: welcomed[i], success: true } }),
  )
  return results
}
