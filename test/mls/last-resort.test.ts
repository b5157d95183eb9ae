import { randomUUID } from 'node:crypto'
import { sql } from 'kysely'
import { describe, expect, it } from 'vitest'
import { addProposal, Client, commit, countRows, encodeBase64, keyPackage, keyPackageRef } from '../helpers/index.js'
import { testAppForFile } from '../helpers/per-file.js'

const METRICS_TOKEN = 'metrics-token-0123456789'
const t = testAppForFile({ config: { METRICS_TOKEN } })

/** The counts of regular and last-resort key packages, of all getKeyPackageStats answers. */
async function statsOf(client: Client) {
  const { available, consumed, lastResort, lastResortHandouts } = (await client.call('getKeyPackageStats')).body
  return { available, consumed, lastResort, lastResortHandouts }
}

async function lastResortHandoutsMetric(): Promise<number> {
  const res = await fetch(`${t.url}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } })
  const line = (await res.text()).split('\n').find((l) => l.startsWith('key_package_last_resort_handouts_total '))
  return Number(line?.split(' ').pop())
}

/** `adder` adds `member` to its conversation with the key package the server hands out; answers addMembers' reply. */
async function add(adder: Client, convoId: string, member: Client, keyPackage?: Uint8Array) {
  await adder.sync(convoId)
  const [kp] = keyPackage ? [keyPackage] : await adder.keyPackagesOf(member)
  const made = await commit(adder.state, [addProposal(kp!)])
  const res = await adder.call('addMembers', {
    input: {
      convoId,
      didList: [member.user.did],
      commit: encodeBase64(made.data),
      welcomeMessage: encodeBase64(made.welcome!),
      epoch: adder.epoch,
    },
  })
  if (res.status === 200) adder.state = made.state
  return res
}

describe('a last-resort key package', () => {
  it('keeps a user with no other key package addable, by several groups, each of which it then joins', async () => {
    const [alice, carol, bob] = [await Client.create(t), await Client.create(t), await Client.create(t)]
    await bob.publishKeyPackage({ lastResort: true })
    expect(await statsOf(bob)).toEqual({ available: 0, consumed: 0, lastResort: true, lastResortHandouts: 0 })
    const before = await lastResortHandoutsMetric()

    // Alice and carol each get the same package and add bob with it, to two groups.
    const [fromAlice] = await alice.keyPackagesOf(bob)
    const [fromCarol] = await carol.keyPackagesOf(bob)
    expect(encodeBase64(fromCarol!)).toBe(encodeBase64(fromAlice!))
    const convos = [
      await alice.createConvo([await Client.create(t)]),
      await carol.createConvo([await Client.create(t)]),
    ]
    expect((await add(alice, convos[0]!, bob, fromAlice)).status).toBe(200)
    expect((await add(carol, convos[1]!, bob, fromCarol)).status).toBe(200)
    // Bob's device joins both with the one private key it keeps for the package (a client state per group).
    const bobIn = convos.map(() => new Client(t, bob.user))
    for (const [i, convoId] of convos.entries()) await bobIn[i]!.join(convoId)
    expect((await alice.say(convos[0]!, 'hi from alice')).status).toBe(200)
    expect((await carol.say(convos[1]!, 'hi from carol')).status).toBe(200)
    expect(await bobIn[0]!.sync(convos[0]!)).toEqual(['hi from alice'])
    expect(await bobIn[1]!.sync(convos[1]!)).toEqual(['hi from carol'])

    // Never consumed: still there, and counted, for bob and for the operator.
    expect(await statsOf(bob)).toEqual({ available: 0, consumed: 0, lastResort: true, lastResortHandouts: 2 })
    expect(await lastResortHandoutsMetric()).toBe(before + 2)
  })

  it('stands aside as soon as a regular one is published, and comes back when that one is gone', async () => {
    const [alice, bob] = [await Client.create(t), await Client.create(t)]
    await bob.publishKeyPackage({ lastResort: true })
    const lastResort = await alice.keyPackagesOf(bob)
    const regular = await keyPackage(bob.user)
    expect((await t.seed.publishKeyPackage(bob.user, regular)).body).toEqual({ available: 1 })
    // Counted afresh from the regular publish.
    expect(await statsOf(bob)).toEqual({ available: 1, consumed: 0, lastResort: true, lastResortHandouts: 0 })
    expect(encodeBase64((await alice.keyPackagesOf(bob))[0]!)).toBe(encodeBase64(regular))
    expect(encodeBase64((await alice.keyPackagesOf(bob))[0]!)).toBe(encodeBase64(lastResort[0]!))
    expect(await statsOf(bob)).toEqual({ available: 0, consumed: 1, lastResort: true, lastResortHandouts: 1 })
  })

  it('is one per user and cipher suite, declared by flag or extension; a Welcome may name only the current one, handed out to its sender', async () => {
    const [alice, carol, bob] = [await Client.create(t), await Client.create(t), await Client.create(t)]
    const lastResortRows = async () =>
      countRows(t.ctx.db, 'key_package', sql`owner_did = ${bob.user.did} AND last_resort`)
    // By flag: a package without the extension, for MLS libraries that cannot write it.
    const first = await keyPackage(bob.user)
    expect((await t.seed.publishKeyPackage(bob.user, first, { lastResort: true })).body).toEqual({ available: 0 })
    const duplicate = await t.seed.publishKeyPackage(bob.user, first, { lastResort: true })
    expect([duplicate.status, duplicate.body.error]).toEqual([409, 'DuplicateKeyPackage'])
    const convoId = await alice.createConvo([await Client.create(t)])
    const [handedToAlice] = await alice.keyPackagesOf(bob)
    expect(encodeBase64(handedToAlice!)).toBe(encodeBase64(first))

    // A new one replaces it: the Welcome alice builds from the old one is refused.
    const second = await keyPackage(bob.user, { lastResort: true })
    expect((await t.seed.publishKeyPackage(bob.user, second)).status).toBe(200)
    expect(await lastResortRows()).toBe(1)
    const replaced = await add(alice, convoId, bob, handedToAlice)
    expect([replaced.status, replaced.body.error]).toEqual([400, 'WelcomeMismatch'])

    // Carol is handed the new one; alice, who was not, cannot use its bytes.
    const [handedToCarol] = await carol.keyPackagesOf(bob)
    expect(encodeBase64(handedToCarol!)).toBe(encodeBase64(second))
    const notHanded = await add(alice, convoId, bob, handedToCarol)
    expect([notHanded.status, notHanded.body.message]).toEqual([400, expect.stringMatching(/did not hand out to you/)])
    expect(await keyPackageRef(handedToCarol!)).toEqual(await keyPackageRef(second))
    expect(await statsOf(bob)).toMatchObject({ lastResort: true, lastResortHandouts: 1 })

    // Two published at once: the later replaces the earlier, still one.
    const racing = await Promise.all(
      [1, 2].map(async () => t.seed.publishKeyPackage(bob.user, await keyPackage(bob.user, { lastResort: true }))),
    )
    expect(racing.map((r) => r.status)).toEqual([200, 200])
    expect(await lastResortRows()).toBe(1)
  })

  it('published with a key, then replaced: the retry replays its first answer and replaces nothing back', async () => {
    const [alice, carol, bob] = [await Client.create(t), await Client.create(t), await Client.create(t)]
    const first = await keyPackage(bob.user, { lastResort: true })
    const keyed = { idempotencyKey: randomUUID() }
    const answer = await t.seed.publishKeyPackage(bob.user, first, keyed)
    expect(answer.status).toBe(200)
    const second = await keyPackage(bob.user, { lastResort: true })
    expect((await t.seed.publishKeyPackage(bob.user, second)).status).toBe(200)
    const [handed] = await alice.keyPackagesOf(bob)
    expect(encodeBase64(handed!)).toBe(encodeBase64(second))

    const retry = await t.seed.publishKeyPackage(bob.user, first, keyed)
    expect([retry.status, retry.body, retry.headers.get('idempotent-replayed')]).toEqual([200, answer.body, 'true'])
    // The current one and who was handed it stand.
    expect(encodeBase64((await carol.keyPackagesOf(bob))[0]!)).toBe(encodeBase64(second))
    expect(await statsOf(bob)).toMatchObject({ lastResort: true, lastResortHandouts: 2 })
  })
})
