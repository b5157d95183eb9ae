import { randomBytes, randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { b64, bytesJson, NS, randomGroupId, SUITE } from '../test/helpers/mls.js'
import { TestUser } from '../test/helpers/users.js'
import type { Xrpc } from './client.js'
import type { BenchServer } from './server.js'

export interface RoundTrips {
  endpoint: string
  /** Statements sent on the request's own path, per request. */
  request: number
  /** Statements the request caused in the background (event fan-out), per request. */
  background: number
}

const fakeDid = () => `did:plc:${randomBytes(15).toString('hex').slice(0, 24)}`
const blob = (bytes = 64) => b64(randomBytes(bytes))

/**
 * Database round trips per request of every blue.catbird.mls method (except
 * the event stream), counted by the server process (one per statement sent):
 * `calls` sequential calls each, on a server doing nothing else.
 */
export async function countRoundTrips(api: Xrpc, server: BenchServer, calls: number): Promise<RoundTrips[]> {
  const [alice, bob, carol] = await Promise.all([TestUser.create(), TestUser.create(), TestUser.create()])
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
      background: (after.background - before.background) / calls,
    })
  }
  type Input = Record<string, unknown>
  /** Each write with a fresh key, then each again: the second time it is replayed. */
  const keyed = async (nsid: string, user: TestUser, makeInput: () => Input, write: (input: Input) => Promise<unknown>) => {
    const inputs: Input[] = []
    await count(`${nsid} (key)`, () => {
      const input = { ...makeInput(), idempotencyKey: randomUUID() }
      inputs.push(input)
      return write(input)
    })
    await count(`${nsid} (replay)`, async (i) => {
      const reply = await api.call(user, `${NS}.${nsid}`, { input: inputs[i] })
      if (reply.headers.get('idempotent-replayed') !== 'true') throw new Error(`${nsid}: not replayed`)
    })
  }

  const welcomed: string[] = []
  const newConvo = () => ({
    groupId: randomGroupId(),
    cipherSuite: SUITE,
    initialMembers: [bob.did],
    welcomeMessage: blob(),
  })
  const createConvo = async (input: Input) => {
    welcomed.push((await api.ok<{ id: string }>(alice, `${NS}.createConvo`, { input })).id)
  }
  await count('createConvo', () => createConvo(newConvo()))
  await keyed('createConvo', alice, newConvo, createConvo)

  const convoId = welcomed[0] as string
  const message = () => ({ convoId, senderDid: alice.did, epoch: 0, ciphertext: bytesJson(randomBytes(128)) })
  const send = (input: Input) => api.ok(alice, `${NS}.sendMessage`, { input })
  await count('sendMessage', () => send(message()))
  await keyed('sendMessage', alice, message, send)
  const firstMessage = (
    await api.ok<{ messages: Array<{ id: string }> }>(alice, `${NS}.getMessages`, { params: { convoId, limit: 1 } })
  ).messages[0]?.id as string
  await count('getMessages', () => api.ok(alice, `${NS}.getMessages`, { params: { convoId, limit: 50 } }))
  await count('getMessages (sinceMessage)', () =>
    api.ok(alice, `${NS}.getMessages`, { params: { convoId, limit: 50, sinceMessage: firstMessage } }),
  )
  await count('getEpoch', () => api.ok(alice, `${NS}.getEpoch`, { params: { convoId } }))
  await count('getConvos', () => api.ok(alice, `${NS}.getConvos`, { params: { limit: 50 } }))

  // Membership changes with a commit each, so the epoch advances every time.
  let epoch = 0
  const added: string[] = []
  const addOne = () => {
    const did = fakeDid()
    added.push(did)
    return { convoId, didList: [did], commit: blob(), welcomeMessage: blob(), epoch }
  }
  const advance = async (nsid: string, input: Input) => {
    epoch = (await api.ok<{ newEpoch: number }>(alice, `${NS}.${nsid}`, { input })).newEpoch
  }
  const addMembers = (input: Input) => advance('addMembers', input)
  await count('addMembers', () => addMembers(addOne()))
  await keyed('addMembers', alice, addOne, addMembers)
  await count('getCommits', () => api.ok(alice, `${NS}.getCommits`, { params: { convoId, fromEpoch: 0 } }))
  await count('leaveConvo', (i) =>
    advance('leaveConvo', { convoId, targetDid: added[i], commit: blob(), epoch }),
  )

  const keyPackage = () => ({ keyPackage: blob(200), cipherSuite: SUITE })
  const publish = (input: Input) => api.ok(carol, `${NS}.publishKeyPackage`, { input })
  await count('publishKeyPackage', () => publish(keyPackage()))
  await keyed('publishKeyPackage', carol, keyPackage, publish)
  await count('getKeyPackages', () =>
    api.ok(alice, `${NS}.getKeyPackages`, { params: { dids: [carol.did], cipherSuite: SUITE } }),
  )
  await count('getKeyPackageStats', () => api.ok(carol, `${NS}.getKeyPackageStats`))

  await count('getWelcome', (i) => api.ok(bob, `${NS}.getWelcome`, { params: { convoId: welcomed[i] as string } }))
  await count('confirmWelcome', (i) =>
    api.ok(bob, `${NS}.confirmWelcome`, { input: { convoId: welcomed[i], success: true } }),
  )
  return results
}
