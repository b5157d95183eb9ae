import { randomBytes } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestApp, type TestApp } from '../helpers/app.js'
import { b64, bytesJson, NS, publishKeyPackage, randomGroupId, SUITE } from '../helpers/mls.js'
import { TestUser } from '../helpers/users.js'

let t: TestApp

beforeAll(async () => {
  t = await startTestApp()
})
afterAll(async () => {
  await t?.close()
})

type Messages = { messages: Array<{ sender: string; ciphertext: { $bytes: string }; seq: number }> }

describe('a whole group life', () => {
  it('A publishes key packages, B creates a convo with A, A joins by Welcome, they talk, A leaves, B adds C', async () => {
    const a = await TestUser.create()
    const b = await TestUser.create()
    const c = await TestUser.create()

    // A and C publish key packages; B fetches A's to build the group.
    for (let i = 0; i < 3; i++) expect((await publishKeyPackage(t, a)).status).toBe(200)
    await publishKeyPackage(t, c)
    const kp = await t.call<{ keyPackages: Array<{ did: string; keyPackage: string }> }>(b, `${NS}.getKeyPackages`, {
      params: { dids: [a.did] },
    })
    expect(kp.body.keyPackages.map((k) => k.did)).toEqual([a.did])
    expect((await t.call(a, `${NS}.getKeyPackageStats`)).body).toEqual({ available: 2, consumed: 1 })

    // B creates the conversation with A and the Welcome for A.
    const welcome = randomBytes(120)
    const created = await t.call<{ id: string; members: Array<{ did: string }> }>(b, `${NS}.createConvo`, {
      input: {
        groupId: randomGroupId(),
        cipherSuite: SUITE,
        initialMembers: [a.did],
        welcomeMessage: b64(welcome),
        metadata: { name: 'a & b' },
      },
    })
    expect(created.status).toBe(200)
    const convoId = created.body.id

    // A sees it, fetches and confirms the Welcome.
    const aConvos = await t.call<{ conversations: Array<{ id: string }> }>(a, `${NS}.getConvos`)
    expect(aConvos.body.conversations.map((x) => x.id)).toEqual([convoId])
    const fetched = await t.call<{ welcome: string }>(a, `${NS}.getWelcome`, { params: { convoId } })
    expect(Buffer.from(fetched.body.welcome, 'base64')).toEqual(welcome)
    expect((await t.call(a, `${NS}.confirmWelcome`, { input: { convoId, success: true } })).body).toEqual({ confirmed: true })
    expect((await t.call(a, `${NS}.getWelcome`, { params: { convoId } })).status).toBe(410)

    // They exchange messages at epoch 0.
    const said: Array<[TestUser, Buffer]> = []
    for (let i = 0; i < 4; i++) {
      const who = i % 2 ? a : b
      const ciphertext = randomBytes(20 + i)
      said.push([who, ciphertext])
      const sent = await t.call(who, `${NS}.sendMessage`, {
        input: { convoId, senderDid: who.did, epoch: 0, ciphertext: bytesJson(ciphertext) },
      })
      expect(sent.status).toBe(200)
    }
    const read = await t.call<Messages>(a, `${NS}.getMessages`, { params: { convoId } })
    expect(read.body.messages.map((m) => [m.sender, m.ciphertext.$bytes, m.seq])).toEqual(
      said.map(([who, ct], i) => [who.did, b64(ct), i + 1]),
    )

    // A leaves with a commit: epoch 1.
    const left = await t.call(a, `${NS}.leaveConvo`, { input: { convoId, commit: b64(randomBytes(16)), epoch: 0 } })
    expect(left.body).toEqual({ success: true, newEpoch: 1 })
    expect((await t.call(a, `${NS}.getMessages`, { params: { convoId } })).status).toBe(403)

    // B adds C with C's key package and a commit: epoch 2; C joins.
    const cKp = await t.call<{ keyPackages: unknown[] }>(b, `${NS}.getKeyPackages`, { params: { dids: [c.did] } })
    expect(cKp.body.keyPackages).toHaveLength(1)
    const added = await t.call(b, `${NS}.addMembers`, {
      input: { convoId, didList: [c.did], commit: b64(randomBytes(16)), welcomeMessage: b64(randomBytes(50)), epoch: 1 },
    })
    expect(added.body).toEqual({ success: true, newEpoch: 2 })
    expect((await t.call(c, `${NS}.getWelcome`, { params: { convoId } })).status).toBe(200)
    expect((await t.call(c, `${NS}.confirmWelcome`, { input: { convoId, success: true } })).status).toBe(200)

    const commits = await t.call<{ commits: Array<{ epoch: number; sender: string }> }>(c, `${NS}.getCommits`, {
      params: { convoId, fromEpoch: 0 },
    })
    expect(commits.body.commits.map((x) => [x.epoch, x.sender])).toEqual([[0, a.did], [1, b.did]])
    // A message at the stale epoch is refused; at the current one it lands, and C sees only it.
    const stale = await t.call(b, `${NS}.sendMessage`, { input: { convoId, senderDid: b.did, epoch: 1, ciphertext: bytesJson(randomBytes(8)) } })
    expect(stale.body.error).toBe('EpochMismatch')
    const fresh = await t.call(c, `${NS}.sendMessage`, { input: { convoId, senderDid: c.did, epoch: 2, ciphertext: bytesJson(randomBytes(8)) } })
    expect(fresh.status).toBe(200)
    const cRead = await t.call<Messages>(c, `${NS}.getMessages`, { params: { convoId } })
    expect(cRead.body.messages.map((m) => [m.sender, m.seq])).toEqual([[c.did, 5]])
    const members = await t.call<{ conversations: Array<{ members: Array<{ did: string }>; epoch: number }> }>(b, `${NS}.getConvos`)
    expect(members.body.conversations[0]!.members.map((m) => m.did).sort()).toEqual([b.did, c.did].sort())
    expect(members.body.conversations[0]!.epoch).toBe(2)
  })
})
