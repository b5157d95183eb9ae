import { randomBytes } from 'node:crypto'
import { decodeMlsMessage, encodeMlsMessage } from 'ts-mls'
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  addMembersInput,
  addProposal,
  bytesJson,
  commit,
  encodeBase64,
  keyPackage,
  lifetimeFromNow,
  message,
  NSID,
  startTestApp,
  stateOf,
  SUITE,
  type PreparedCommit,
  type TestApp,
  TestUser,
} from '../helpers/index.js'

let t: TestApp
let alice: TestUser
let bob: TestUser

beforeAll(async () => {
  t = await startTestApp()
  alice = await TestUser.create()
  bob = await TestUser.create()
})
afterAll(async () => {
  await t?.close()
})

const DAY = 24n * 3600n
const P256 = 'MLS_128_DHKEMP256_AES128GCM_SHA256_P256'

/** Row counts a refused request must leave as they were. */
async function snapshot() {
  const { rows } = await sql<{ counts: string }>`SELECT concat_ws(',',
    (SELECT count(*) FROM convo), (SELECT count(*) FROM member WHERE left_at IS NULL), (SELECT count(*) FROM message),
    (SELECT count(*) FROM commit), (SELECT count(*) FROM key_package), (SELECT count(*) FROM admitted_key_package),
    (SELECT count(*) FROM welcome), (SELECT sum(epoch) FROM convo)) AS counts`.execute(t.ctx.db)
  return rows[0]!.counts
}

/** The request is refused with `status` and `error`, and changes nothing; its message, for the reason. */
async function expectRefused(
  request: () => Promise<{ status: number; body: { error?: string; message?: string } }>,
  status: number,
  error: string,
): Promise<string> {
  const before = await snapshot()
  const { status: got, body } = await request()
  expect({ status: got, error: body.error }, body.message).toEqual({ status, error })
  expect(await snapshot()).toBe(before)
  return body.message ?? ''
}

describe('forged key packages are refused with InvalidKeyPackage', () => {
  const publish = (user: TestUser, data: Uint8Array, cipherSuite = SUITE) =>
    t.call(user, NSID.publishKeyPackage, { input: { keyPackage: encodeBase64(data), cipherSuite } })

  it.each([
    [
      'of another DID',
      async (user: TestUser) => keyPackage(user, { identity: bob.did }),
      /basic credential whose identity is your DID/,
    ],
    [
      'of another cipher suite than declared',
      async (user: TestUser) => keyPackage(user, { suite: P256 }),
      /cipher suite is MLS_128_DHKEMP256/,
    ],
    [
      'expired',
      async (user: TestUser) => keyPackage(user, { lifetime: lifetimeFromNow(-2n * DAY, -DAY) }),
      /lifetime has ended/,
    ],
    [
      'not valid yet',
      async (user: TestUser) => keyPackage(user, { lifetime: lifetimeFromNow(DAY, 2n * DAY) }),
      /lifetime has not begun/,
    ],
    [
      'valid for too long',
      async (user: TestUser) => keyPackage(user, { lifetime: lifetimeFromNow(0n, 91n * DAY) }),
      /more than 90 days/,
    ],
    [
      'with a bad signature',
      async (user: TestUser) => {
        const data = await keyPackage(user)
        data[data.length - 1]! ^= 1
        return data
      },
      /signature does not verify/,
    ],
    ['that is not a key package', async () => randomBytes(300), /not an MLS KeyPackage/],
    ['that is a Welcome', async (user: TestUser) => welcomeOfNewGroup(user), /not an MLS KeyPackage/],
  ])('%s', async (_name, make, why) => {
    const user = await TestUser.create()
    const data = await make(user)
    expect(await expectRefused(() => publish(user, data), 400, 'InvalidKeyPackage')).toMatch(why)
  })

  it('a valid one of the declared suite is taken, P-256 too', async () => {
    const user = await TestUser.create()
    expect((await publish(user, await keyPackage(user, { suite: P256 }), P256)).status).toBe(200)
  })
})

/** The Welcome of a group `user` made with a fresh member, as MLS bytes. */
async function welcomeOfNewGroup(user: TestUser): Promise<Uint8Array> {
  const convo = await t.seed.prepareConvo(user, [await TestUser.create()])
  return Buffer.from(String(convo.input.welcomeMessage), 'base64')
}

describe('forged messages are refused with their named error', () => {
  it('another group, a header epoch that is not the one given, and bytes that are no PublicMessage or PrivateMessage', async () => {
    const convo = await t.seed.createConvo(alice, [bob])
    const other = await t.seed.createConvo(alice)
    const send = (ciphertext: Uint8Array, epoch: number) => () =>
      t.call(alice, NSID.sendMessage, {
        input: { convoId: convo.id, senderDid: alice.did, epoch, ciphertext: bytesJson(ciphertext) },
      })

    // The other group is at epoch 0: only the group id is wrong.
    expect(await expectRefused(send(await message(alice, other.id), 0), 400, 'GroupMismatch')).toContain(other.groupId)
    // A commit of another group, through sendMessage and through leaveConvo.
    const otherUpdate = await t.seed.prepareCommit(alice, other.id)
    await expectRefused(send(otherUpdate.commit, 0), 400, 'GroupMismatch')
    await expectRefused(
      () =>
        t.call(alice, NSID.leaveConvo, {
          input: { convoId: convo.id, targetDid: bob.did, commit: encodeBase64(otherUpdate.commit) },
        }),
      400,
      'GroupMismatch',
    )
    expect(await expectRefused(send(await message(alice, convo.id), 2), 400, 'EpochMismatch')).toMatch(
      /of epoch 1, not 2/,
    )
    await expectRefused(send(randomBytes(120), 1), 400, 'InvalidMessage')
    await expectRefused(send(await keyPackage(alice), 1), 400, 'InvalidMessage')
    await expectRefused(send(await welcomeOfNewGroup(alice), 1), 400, 'InvalidMessage')
  })

  it('application data in a PublicMessage, and a commit field that holds no commit', async () => {
    const convo = await t.seed.createConvo(alice, [bob])
    const state = await stateOf(alice, convo.id)
    // RFC 9420 only ever sends application data encrypted: a PublicMessage made to carry some.
    const decoded = decodeMlsMessage((await commit(state, [], { publicMessage: true })).data, 0)?.[0]
    if (decoded?.wireformat !== 'mls_public_message') throw new Error('expected a PublicMessage')
    const { content, auth } = decoded.publicMessage
    const applicationInTheClear = encodeMlsMessage({
      ...decoded,
      publicMessage: {
        ...decoded.publicMessage,
        content: { ...content, contentType: 'application', applicationData: new TextEncoder().encode('hello') },
        auth: { contentType: 'application', signature: auth.signature },
      },
    })
    const sent = () =>
      t.call(alice, NSID.sendMessage, {
        input: { convoId: convo.id, senderDid: alice.did, epoch: 1, ciphertext: bytesJson(applicationInTheClear) },
      })
    expect(await expectRefused(sent, 400, 'InvalidMessage')).toMatch(/must be a PrivateMessage/)

    const carol = await TestUser.create()
    const notACommit = () =>
      t.call(alice, NSID.addMembers, {
        input: { convoId: convo.id, didList: [carol.did], commit: encodeBase64(applicationInTheClear), epoch: 1 },
      })
    expect(await expectRefused(notACommit, 400, 'InvalidMessage')).toMatch(/application message, not a commit/)
  })
})

describe('forged Welcomes are refused, and no one is added without one', () => {
  /** addMembers of `dids` with a commit of alice's adding `keyPackages` and its Welcome (or another). */
  async function addWith(convoId: string, dids: string[], keyPackages: Uint8Array[], welcome?: Uint8Array) {
    const made = await commit(await stateOf(alice, convoId), keyPackages.map(addProposal))
    return () =>
      t.call(alice, NSID.addMembers, {
        input: {
          convoId,
          didList: dids,
          commit: encodeBase64(made.data),
          welcomeMessage: encodeBase64(welcome ?? made.welcome!),
          epoch: made.epoch,
        },
      })
  }

  it('for key packages nobody handed out, handed to someone else, of someone not added, or used before', async () => {
    const [carol, dave, eve] = await Promise.all([TestUser.create(), TestUser.create(), TestUser.create()])
    const convo = await t.seed.createConvo(alice, [bob])

    // Carol's package as she published it: the server never handed it to alice.
    const published = await keyPackage(carol)
    expect((await t.seed.publishKeyPackage(carol, published)).status).toBe(200)
    expect(await expectRefused(await addWith(convo.id, [carol.did], [published]), 400, 'WelcomeMismatch')).toMatch(
      /did not hand out to you/,
    )
    // Eve claimed it: still not alice's to use.
    const [toEve] = await t.seed.claimKeyPackages(eve, [carol])
    expect(await expectRefused(await addWith(convo.id, [carol.did], [toEve!]), 400, 'WelcomeMismatch')).toMatch(
      /did not hand out to you/,
    )

    // Dave's package, handed to alice, but dave is not being added; and carol is then not named.
    const [daves] = await t.seed.claimKeyPackages(alice, [dave])
    expect(await expectRefused(await addWith(convo.id, [carol.did], [daves!]), 400, 'WelcomeMismatch')).toMatch(
      /not a key package of a member being added/,
    )
    const [carols] = await t.seed.claimKeyPackages(alice, [carol])
    expect(
      await expectRefused(await addWith(convo.id, [carol.did, dave.did], [carols!]), 400, 'WelcomeMismatch'),
    ).toMatch(new RegExp(`names no key package of ${dave.did}`))

    // Used once for carol, a package cannot admit her again.
    const adding = await t.seed.prepareCommit(alice, convo.id, { add: [carol], keyPackages: [carols!] })
    const added = await t.call(alice, NSID.addMembers, { input: addMembersInput(convo.id, [carol], adding) })
    expect(added.status).toBe(200)
    adding.accepted()
    expect((await t.seed.removeMember(alice, convo.id, carol)).status).toBe(200)
    expect(await expectRefused(await addWith(convo.id, [carol.did], [carols!]), 400, 'WelcomeMismatch')).toMatch(
      /another Welcome already used/,
    )
  })

  it('for a key package a Welcome to another conversation used; a retry for the same one may use it', async () => {
    const carol = await TestUser.create()
    const [x, y] = await Promise.all([t.seed.createConvo(alice, [bob]), t.seed.createConvo(alice, [bob])])
    const [carols] = await t.seed.claimKeyPackages(alice, [carol])
    const addCarol = (prepared: PreparedCommit) =>
      t.call(alice, NSID.addMembers, { input: addMembersInput(x.id, [carol], prepared) })
    // Bob commits first: alice's commit adding carol is built on an epoch that is over.
    const lost = await t.seed.prepareCommit(alice, x.id, { add: [carol], keyPackages: [carols!] })
    expect((await t.seed.commitUpdate(bob, x.id)).status).toBe(200)
    expect(await expectRefused(() => addCarol(lost), 409, 'EpochMismatch')).toMatch(/fetch the missing commits/)
    // Rebuilt on the new epoch with the same key package, it admits carol, who joins by the Welcome.
    const rebuilt = await t.seed.prepareCommit(alice, x.id, { add: [carol], keyPackages: [carols!] })
    expect((await addCarol(rebuilt)).status).toBe(200)
    rebuilt.accepted()
    expect((await stateOf(carol, x.id)).groupContext.epoch).toBe(BigInt(rebuilt.epoch + 1))
    // It opened one group: another conversation's Welcome may not name it.
    expect(await expectRefused(await addWith(y.id, [carol.did], [carols!]), 400, 'WelcomeMismatch')).toMatch(
      /which a Welcome to another conversation already used/,
    )
  })

  it('for a key package the Welcomes of two conversations name at once: one admits its owner', async () => {
    const carol = await TestUser.create()
    const convos = await Promise.all([t.seed.createConvo(alice, [bob]), t.seed.createConvo(alice, [bob])])
    const [carols] = await t.seed.claimKeyPackages(alice, [carol])
    const adds = await Promise.all(convos.map((convo) => addWith(convo.id, [carol.did], [carols!])))
    const replies = await Promise.all(adds.map((add) => add()))
    expect(replies.map((r) => [r.status, r.body.error]).sort()).toEqual([
      [200, undefined],
      [400, 'WelcomeMismatch'],
    ])
    const { rows } = await sql<{ admitted: string }>`
      SELECT count(*) AS admitted FROM admitted_key_package WHERE owner_did = ${carol.did}`.execute(t.ctx.db)
    expect(Number(rows[0]!.admitted)).toBe(1)
  })

  it('of another cipher suite, without a Welcome, or without the commit', async () => {
    const [carol, dave] = await Promise.all([TestUser.create(), TestUser.create()])
    const convo = await t.seed.createConvo(alice, [bob])
    const p256 = await t.seed.prepareConvo(alice, [dave], {}, { suite: P256 })
    const [carols] = await t.seed.claimKeyPackages(alice, [carol])
    const otherSuite = await addWith(
      convo.id,
      [carol.did],
      [carols!],
      Buffer.from(String(p256.input.welcomeMessage), 'base64'),
    )
    expect(await expectRefused(otherSuite, 400, 'WelcomeMismatch')).toMatch(/cipher suite MLS_128_DHKEMP256/)

    const adding = await commit(await stateOf(alice, convo.id), [addProposal(carols!)])
    const noWelcome = () =>
      t.call(alice, NSID.addMembers, {
        input: { convoId: convo.id, didList: [carol.did], commit: encodeBase64(adding.data), epoch: 1 },
      })
    await expectRefused(noWelcome, 400, 'KeyPackageNotFound')
    const noCommit = () =>
      t.call(alice, NSID.addMembers, {
        input: { convoId: convo.id, didList: [carol.did], welcomeMessage: encodeBase64(adding.welcome!) },
      })
    expect(await expectRefused(noCommit, 400, 'InvalidRequest')).toMatch(/commit is required/)
  })

  it('at creation too: members need a Welcome naming packages handed to the creator', async () => {
    const carol = await TestUser.create()
    const published = await keyPackage(carol)
    expect((await t.seed.publishKeyPackage(carol, published)).status).toBe(200)
    const unclaimed = await t.seed.prepareConvo(alice, [carol], {}, { keyPackages: [published] })
    const create = () => t.call(alice, NSID.createConvo, { input: unclaimed.input })
    expect(await expectRefused(create, 400, 'WelcomeMismatch')).toMatch(/did not hand out to you/)
    const withoutWelcome = () =>
      t.call(alice, NSID.createConvo, { input: { ...unclaimed.input, welcomeMessage: undefined } })
    await expectRefused(withoutWelcome, 400, 'KeyPackageNotFound')
    // A Welcome, but no one to admit with it.
    const alone = () => t.call(alice, NSID.createConvo, { input: { ...unclaimed.input, initialMembers: [] } })
    expect(await expectRefused(alone, 400, 'WelcomeMismatch')).toMatch(/not a key package of a member being added/)
    // Once the server handed it to alice, the very same group is created.
    const claimed = await t.call(alice, NSID.getKeyPackages, {
      params: { dids: [carol.did] },
    })
    expect(claimed.body.keyPackages.map((kp) => kp.keyPackage)).toEqual([encodeBase64(published)])
    expect((await create()).status).toBe(200)
  })
})
