import { describe, expect, it } from 'vitest'
import { bytesJson, encodeBase64, message, NSID, TestUser, welcomeOf } from '../helpers/index.js'
import { testAppForFile } from '../helpers/per-file.js'

const t = testAppForFile()

describe('a whole group life', () => {
  it('A publishes key packages, B creates a convo with A, A joins by Welcome, they talk, A leaves, B removes A, B adds C', async () => {
    const a = await TestUser.create()
    const b = await TestUser.create()
    const c = await TestUser.create()

    // A and C publish key packages; B fetches A's to build the group.
    for (let i = 1; i <= 3; i++)
      expect(await t.seed.publishKeyPackage(a)).toMatchObject({ status: 200, body: { available: i } })
    expect(await t.seed.publishKeyPackage(c)).toMatchObject({ status: 200, body: { available: 1 } })
    const kp = await t.call(b, NSID.getKeyPackages, {
      params: { dids: [a.did] },
    })
    expect(kp.body.keyPackages.map((k) => k.did)).toEqual([a.did])
    expect((await t.call(a, NSID.getKeyPackageStats)).body).toMatchObject({
      available: 2,
      consumed: 1,
      lastResort: false,
      lastResortHandouts: 0,
    })

    // B creates the conversation with A, with that key package, and the Welcome for A.
    const prepared = await t.seed.prepareConvo(
      b,
      [a],
      { metadata: { name: 'a & b' } },
      {
        keyPackages: kp.body.keyPackages.map((k) => Buffer.from(k.keyPackage, 'base64')),
      },
    )
    const created = await t.call(b, NSID.createConvo, { input: prepared.input })
    expect(created.status).toBe(200)
    prepared.created(created.body)
    const convoId = created.body.id
    const welcome = welcomeOf(convoId)
    expect(created.body.epoch).toBe(1)

    // A sees it, fetches and confirms the Welcome.
    const aConvos = await t.call(a, NSID.getConvos)
    expect(aConvos.body.conversations.map((x) => x.id)).toEqual([convoId])
    const fetched = await t.call(a, NSID.getWelcome, { params: { convoId } })
    expect(Buffer.from(fetched.body.welcome, 'base64')).toEqual(Buffer.from(welcome))
    expect((await t.call(a, NSID.confirmWelcome, { input: { convoId, success: true } })).body).toEqual({
      confirmed: true,
    })
    expect((await t.call(a, NSID.getWelcome, { params: { convoId } })).status).toBe(410)

    // They exchange messages at epoch 1.
    const said: Array<[TestUser, Uint8Array]> = []
    for (let i = 0; i < 4; i++) {
      const who = i % 2 ? a : b
      const ciphertext = await message(who, convoId)
      said.push([who, ciphertext])
      const sent = await t.call(who, NSID.sendMessage, {
        input: { convoId, senderDid: who.did, epoch: 1, ciphertext: bytesJson(ciphertext) },
      })
      expect(sent.status).toBe(200)
    }
    const read = await t.call(a, NSID.getMessages, { params: { convoId } })
    expect(read.body.messages.map((m) => [m.sender, m.ciphertext.$bytes, m.seq])).toEqual(
      said.map(([who, ct], i) => [who.did, encodeBase64(ct), i + 1]),
    )

    // A leaves (it cannot commit its own removal); B commits the removal: epoch 2.
    const left = await t.call(a, NSID.leaveConvo, { input: { convoId } })
    expect(left.body).toEqual({ success: true, newEpoch: 1 })
    expect((await t.call(a, NSID.getMessages, { params: { convoId } })).status).toBe(403)
    expect((await t.seed.removeMember(b, convoId, a)).body).toEqual({ success: true, newEpoch: 2 })
    const staleMessage = await message(b, convoId)

    // B adds C with C's key package, a commit and the Welcome: epoch 3; C joins.
    const cKp = await t.call(b, NSID.getKeyPackages, {
      params: { dids: [c.did] },
    })
    expect(cKp.body.keyPackages).toHaveLength(1)
    const adding = await t.seed.prepareCommit(b, convoId, {
      add: [c],
      keyPackages: cKp.body.keyPackages.map((k) => Buffer.from(k.keyPackage, 'base64')),
    })
    const added = await t.call(b, NSID.addMembers, {
      input: {
        convoId,
        didList: [c.did],
        commit: encodeBase64(adding.commit),
        welcomeMessage: encodeBase64(adding.welcome!),
        epoch: 2,
      },
    })
    expect(added.body).toEqual({ success: true, newEpoch: 3 })
    adding.accepted()
    expect((await t.call(c, NSID.getWelcome, { params: { convoId } })).status).toBe(200)
    expect((await t.call(c, NSID.confirmWelcome, { input: { convoId, success: true } })).status).toBe(200)

    const commits = await t.call(c, NSID.getCommits, {
      params: { convoId, fromEpoch: 0 },
    })
    expect(commits.body.commits.map((x) => [x.epoch, x.sender])).toEqual([
      [1, b.did],
      [2, b.did],
    ])
    // A message at the stale epoch is refused; at the current one it lands, and C sees only it.
    const stale = await t.seed.sendMessage(b, convoId, { ciphertext: staleMessage })
    expect(stale.body.error).toBe('EpochMismatch')
    const fresh = await t.seed.sendMessage(c, convoId)
    expect(fresh.status).toBe(200)
    const cRead = await t.call(c, NSID.getMessages, { params: { convoId } })
    // Seqs 5 and 6 are B's two commits, which C joined after.
    expect(cRead.body.messages.map((m) => [m.sender, m.seq])).toEqual([[c.did, 7]])
    const members = await t.call(b, NSID.getConvos)
    expect(members.body.conversations[0]!.members.map((m) => m.did).sort()).toEqual([b.did, c.did].sort())
    expect(members.body.conversations[0]!.epoch).toBe(3)
  })
})
