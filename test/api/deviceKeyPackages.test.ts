import { randomUUID } from 'node:crypto'
import { sql } from 'kysely'
import { describe, expect, it } from 'vitest'
import {
  assertOutputOf,
  base64Bytes,
  hex,
  joinFromWelcome,
  keyPackage,
  keyPackageItem,
  keyPackageRef,
  NSID,
  SUITE,
  TestDevice,
  TestUser,
  unusedKeyPackages,
} from '../helpers/index.js'
import { testAppForFile } from '../helpers/per-file.js'

const t = testAppForFile({ config: { MAX_KEY_PACKAGES_PER_USER: '6' } })

const refOf = async (data: Uint8Array) => hex(await keyPackageRef(data))

async function registered(device: TestDevice, count = 1): Promise<string> {
  const res = await t.call(device.user, NSID.registerDevice, {
    input: device.registration(await device.keyPackages(count)),
  })
  if (res.status !== 200) throw new Error(`registerDevice: ${JSON.stringify(res.body)}`)
  return res.body.deviceId
}

const publish = (user: TestUser, keyPackages: Array<ReturnType<typeof keyPackageItem> & Record<string, unknown>>) =>
  t.call(user, NSID.publishKeyPackages, { input: { keyPackages } })

describe('publishKeyPackages', () => {
  it('stores a batch as publishKeyPackage would each, bound by key, and reports each refused one by its index', async () => {
    const user = await TestUser.create()
    const device = await TestDevice.of(user)
    const deviceId = await registered(device)
    const good = await device.keyPackages(3)
    const loose = await keyPackage(user)
    const tampered = Uint8Array.from((await device.keyPackages(1))[0]!)
    tampered[tampered.length - 1]! ^= 1
    const foreign = await keyPackage(await TestUser.create())
    // As the iOS client sends them: each with its own idempotency key, its device and its credential's DID.
    const items = [good[0]!, tampered, good[1]!, foreign, loose, good[2]!, good[0]!].map((data) => ({
      ...keyPackageItem(data),
      idempotencyKey: randomUUID(),
      deviceId,
      credentialDid: user.did,
    }))
    // The loose package is no device's: naming one is wrong for it.
    const res = await publish(user, [...items.slice(0, 4), { ...items[4]!, deviceId: undefined }, ...items.slice(5)])
    expect(res.body).toEqual({
      succeeded: 4,
      failed: 3,
      errors: [
        { index: 1, error: expect.stringMatching(/^InvalidKeyPackage: .*signature does not verify/) },
        { index: 3, error: expect.stringMatching(/^InvalidKeyPackage: .*your DID/) },
        { index: 6, error: expect.stringMatching(/^DuplicateKeyPackage: /) },
      ],
    })
    assertOutputOf('clientEra', NSID.publishKeyPackages, res.body)
    const stored = await unusedKeyPackages(t.ctx.db, user)
    for (const data of good) expect(stored[await refOf(data)]).toBe(deviceId)
    expect(stored[await refOf(loose)]).toBeNull()
    // The first package of the registration, and these four.
    expect(Object.keys(stored)).toHaveLength(5)
  })

  it('honours each item’s idempotency key: sent again, the same item is not stored twice; another item under it is refused', async () => {
    const user = await TestUser.create()
    const packages = await Promise.all([1, 2, 3].map(() => keyPackage(user)))
    const items = packages.map((data) => ({ ...keyPackageItem(data), idempotencyKey: randomUUID() }))
    expect((await publish(user, items.slice(0, 2))).body).toEqual({ succeeded: 2, failed: 0 })
    // The whole batch again (a retry after a lost answer), with one more: all taken, nothing stored twice.
    expect((await publish(user, items)).body).toEqual({ succeeded: 3, failed: 0 })
    expect(Object.keys(await unusedKeyPackages(t.ctx.db, user))).toHaveLength(3)
    // A key used for one package, sent with another.
    const reused = { ...keyPackageItem(await keyPackage(user)), idempotencyKey: items[0]!.idempotencyKey }
    expect((await publish(user, [reused])).body).toEqual({
      succeeded: 0,
      failed: 1,
      errors: [{ index: 0, error: expect.stringMatching(/^IdempotencyKeyReused: /) }],
    })
    // Without keys, the same packages again are duplicates.
    expect((await publish(user, packages.map(keyPackageItem))).body.failed).toBe(3)
    // A malformed key refuses its item only.
    const badKey = { ...keyPackageItem(await keyPackage(user)), idempotencyKey: 'é' }
    expect((await publish(user, [badKey])).body.errors).toEqual([
      { index: 0, error: expect.stringMatching(/^InvalidIdempotencyKey: /) },
    ])
    // The same key twice in one batch, for the same package: stored once, both taken.
    const twice = { ...keyPackageItem(await keyPackage(user)), idempotencyKey: randomUUID() }
    expect((await publish(user, [twice, twice])).body).toEqual({ succeeded: 2, failed: 0 })
  })

  it('refuses an item naming an unknown device, or a device whose key did not sign it; stops at the limit', async () => {
    const user = await TestUser.create()
    const [phone, laptop] = await Promise.all([TestDevice.of(user), TestDevice.of(user)])
    const phoneId = await registered(phone)
    await registered(laptop)
    const [ownKey] = await phone.keyPackages(1)
    const [laptopKey] = await laptop.keyPackages(1)
    const res = await publish(user, [
      // By its mlsDid and by its UUID, as well as by its id.
      { ...keyPackageItem(ownKey!), deviceId: `${user.did}#${phoneId}` },
      { ...keyPackageItem(laptopKey!), deviceId: phone.uuid },
      { ...keyPackageItem((await phone.keyPackages(1))[0]!), deviceId: 'nope' },
      { ...keyPackageItem((await phone.keyPackages(1))[0]!), deviceId: `${(await TestUser.create()).did}#${phoneId}` },
    ])
    expect(res.body).toEqual({
      succeeded: 1,
      failed: 3,
      errors: [
        { index: 1, error: expect.stringMatching(/^InvalidKeyPackage: .*not signed by the MLS key of device/) },
        { index: 2, error: expect.stringMatching(/^DeviceNotFound: /) },
        { index: 3, error: expect.stringMatching(/^DeviceNotFound: /) },
      ],
    })
    // Two registered, one published: three of six; the rest of a batch of five past the limit.
    const more = await phone.keyPackages(5)
    const full = await publish(user, more.map(keyPackageItem))
    expect(full.body).toEqual({
      succeeded: 3,
      failed: 2,
      errors: [3, 4].map((index) => ({ index, error: expect.stringMatching(/^TooManyKeyPackages: .*6/) })),
    })
  })

  it('refuses an empty batch, more than 100, and wrong types, storing nothing', async () => {
    const user = await TestUser.create()
    const item = keyPackageItem(await keyPackage(user))
    const refused = async (input: unknown, status: number, error: string) => {
      const res = await t.callRaw(user, NSID.publishKeyPackages, { input })
      expect({ status: res.status, error: res.body.error }, res.body.message).toEqual({ status, error })
    }
    await refused({ keyPackages: [] }, 400, 'InvalidBatch')
    await refused({ keyPackages: Array.from({ length: 101 }, () => item) }, 400, 'BatchTooLarge')
    await refused({ keyPackages: item }, 400, 'InvalidRequest')
    await refused({ keyPackages: [{ ...item, expires: 'tomorrow' }] }, 400, 'InvalidRequest')
    await refused({ keyPackages: [{ ...item, idempotencyKey: 5 }] }, 400, 'InvalidRequest')
    await refused({}, 400, 'InvalidRequest')
    expect(await unusedKeyPackages(t.ctx.db, user)).toEqual({})
  })

  it('takes a last-resort package in a batch as publishKeyPackage does, keyed too', async () => {
    const user = await TestUser.create()
    const item = { ...keyPackageItem(await keyPackage(user, { lastResort: true })), idempotencyKey: randomUUID() }
    expect((await publish(user, [item])).body).toEqual({ succeeded: 1, failed: 0 })
    expect((await publish(user, [item])).body).toEqual({ succeeded: 1, failed: 0 })
    const other = {
      ...keyPackageItem(await keyPackage(user, { lastResort: true })),
      idempotencyKey: item.idempotencyKey,
    }
    expect((await publish(user, [other])).body.errors).toEqual([
      { index: 0, error: expect.stringMatching(/^IdempotencyKeyReused: /) },
    ])
    const stats = await t.call(user, NSID.getKeyPackageStats)
    expect(stats.body).toMatchObject({ available: 0, lastResort: true })
  })
})

describe('getKeyPackages, per device', () => {
  it('hands out one package per device of each DID (packages of no device as one more), never one twice', async () => {
    const user = await TestUser.create()
    const [phone, laptop] = await Promise.all([TestDevice.of(user), TestDevice.of(user)])
    await registered(phone, 2)
    await registered(laptop, 2)
    await t.seed.publishKeyPackage(user)
    const other = await TestUser.create()
    await t.seed.publishKeyPackage(other)
    const callers = await Promise.all(Array.from({ length: 8 }, () => TestUser.create()))
    const answers = await Promise.all(
      callers.map((caller) => t.call(caller, NSID.getKeyPackages, { params: { dids: [user.did, other.did] } })),
    )
    const handed = answers.flatMap((res) => res.body.keyPackages)
    // 5 of the user's, 1 of the other's: each once.
    expect(handed).toHaveLength(6)
    expect(new Set(handed.map((kp) => kp.keyPackage)).size).toBe(6)
    for (const kp of handed) expect(kp.keyPackageHash).toBe(await refOf(base64Bytes(kp.keyPackage)))
    // No caller got two packages of one device (the loose ones count as one more device).
    const consumed = await t.ctx.db
      .selectFrom('key_package')
      .select(['device_id', 'consumed_by'])
      .where('owner_did', '=', user.did)
      .where('consumed_by', 'is not', null)
      .execute()
    const perCaller = consumed.map((row) => `${row.consumed_by} ${row.device_id ?? 'none'}`)
    expect(perCaller).toHaveLength(5)
    expect(new Set(perCaller).size).toBe(5)
  })

  it('admits a user by a Welcome naming a package of each of its two devices, and records both', async () => {
    const user = await TestUser.create()
    const friend = await TestUser.create()
    const [phone, laptop] = await Promise.all([TestDevice.of(user), TestDevice.of(user)])
    await registered(phone)
    await registered(laptop)
    const claimed = await t.call(friend, NSID.getKeyPackages, { params: { dids: [user.did] } })
    const packages = claimed.body.keyPackages.map((kp) => base64Bytes(kp.keyPackage))
    expect(packages).toHaveLength(2)
    const prepared = await t.seed.prepareConvo(friend, [user, user], {}, { keyPackages: packages })
    const res = await t.call(friend, NSID.createConvo, { input: { ...prepared.input, initialMembers: [user.did] } })
    expect(res.status).toBe(200)
    expect(res.body.members.map((m) => m.did).sort()).toEqual([friend.did, user.did].sort())
    const admitted = await t.ctx.db
      .selectFrom('admitted_key_package')
      .select('ref')
      .where('convo_id', '=', res.body.id)
      .execute()
    expect(admitted.map((row) => hex(row.ref)).sort()).toEqual((await Promise.all(packages.map(refOf))).sort())
    // It opens with a package of the user's.
    const welcome = await t.call(user, NSID.getWelcome, { params: { convoId: res.body.id } })
    const state = await joinFromWelcome(user, base64Bytes(welcome.body.welcome))
    expect(state.groupContext.epoch).toBe(1n)
  })
})

describe('getKeyPackageStatus and getKeyPackageHistory', () => {
  it('count the caller’s packages, list those handed out (with their group) and all of them, newest first, page by page', async () => {
    const user = await TestUser.create()
    const friend = await TestUser.create()
    const device = await TestDevice.of(user)
    const deviceId = await registered(device, 3)
    // Handed out twice: once for the conversation's Welcome, once for none yet.
    const claimed = await t.call(friend, NSID.getKeyPackages, { params: { dids: [user.did] } })
    const prepared = await t.seed.prepareConvo(
      friend,
      [user],
      { metadata: { name: 'Picnic' } },
      { keyPackages: [base64Bytes(claimed.body.keyPackages[0]!.keyPackage)] },
    )
    expect((await t.call(friend, NSID.createConvo, { input: prepared.input })).status).toBe(200)
    const groupId = prepared.input.groupId
    await t.call(friend, NSID.getKeyPackages, { params: { dids: [user.did] } })
    const status = await t.call(user, NSID.getKeyPackageStatus)
    expect(status.body).toMatchObject({ totalUploaded: 3, available: 1, consumed: 2 })
    assertOutputOf('clientEra', NSID.getKeyPackageStatus, status.body)
    const consumed = status.body.consumedPackages!
    expect(consumed).toHaveLength(2)
    // Newest first: the package handed out last has no Welcome yet; the one the conversation's Welcome used has its group.
    expect(consumed[0]).toEqual({
      keyPackageHash: expect.any(String),
      consumedAt: expect.any(String),
      cipherSuite: SUITE,
    })
    expect(consumed[1]).toMatchObject({
      keyPackageHash: claimed.body.keyPackages[0]!.keyPackageHash,
      usedInGroup: groupId,
    })
    const page1 = await t.call(user, NSID.getKeyPackageStatus, { params: { limit: 1 } })
    expect(page1.body.consumedPackages).toEqual([consumed[0]])
    const page2 = await t.call(user, NSID.getKeyPackageStatus, { params: { limit: 1, cursor: page1.body.cursor! } })
    expect(page2.body.consumedPackages).toEqual([consumed[1]])
    expect(page2.body.cursor).toBeUndefined()

    const history = await t.call(user, NSID.getKeyPackageHistory, { params: { limit: 2 } })
    assertOutputOf('clientEra', NSID.getKeyPackageHistory, history.body)
    expect(history.body.history).toHaveLength(2)
    const rest = await t.call(user, NSID.getKeyPackageHistory, { params: { cursor: history.body.cursor! } })
    expect(rest.body.cursor).toBeUndefined()
    const all = [...history.body.history, ...rest.body.history]
    expect(new Set(all.map((entry) => entry.packageId)).size).toBe(3)
    const used = all.filter((entry) => entry.consumedForConvo)
    expect(used).toEqual([
      {
        packageId: claimed.body.keyPackages[0]!.keyPackageHash,
        createdAt: expect.any(String),
        consumedAt: expect.any(String),
        consumedForConvo: groupId,
        consumedForConvoName: 'Picnic',
        deviceId,
        cipherSuite: SUITE,
      },
    ])
    expect(all.filter((entry) => entry.deviceId === deviceId)).toHaveLength(3)
    // Others' are theirs.
    expect((await t.call(friend, NSID.getKeyPackageHistory)).body.history).toHaveLength(0)
    for (const cursor of ['x', '1_x', '99999999999999999999_1']) {
      const bad = await t.call(user, NSID.getKeyPackageHistory, { params: { cursor } })
      expect(bad).toMatchObject({ status: 400, body: { error: 'InvalidCursor' } })
    }
  })
})

describe('syncKeyPackages', () => {
  it('withdraws the device’s unused packages it no longer holds, and the Welcomes naming packages it lost', async () => {
    const user = await TestUser.create()
    const friend = await TestUser.create()
    const [phone, laptop] = await Promise.all([TestDevice.of(user), TestDevice.of(user)])
    const phonePackages = await phone.keyPackages(4)
    const phoneRes = await t.call(user, NSID.registerDevice, { input: phone.registration(phonePackages) })
    const phoneId = phoneRes.body.deviceId
    await registered(laptop, 2)
    // The friend adds the user with one of the phone's packages, whose Welcome waits for the phone.
    const phoneRefs = await Promise.all(phonePackages.map(refOf))
    const claimed = await t.call(friend, NSID.getKeyPackages, { params: { dids: [user.did] } })
    const used = claimed.body.keyPackages.find((kp) => phoneRefs.includes(kp.keyPackageHash!))!
    const prepared = await t.seed.prepareConvo(friend, [user], {}, { keyPackages: [base64Bytes(used.keyPackage)] })
    const convo = await t.call(friend, NSID.createConvo, { input: prepared.input })
    prepared.created(convo.body)
    await sql`UPDATE welcome_delivery SET device_id = ${phoneId} WHERE convo_id = ${convo.body.id} AND recipient_did = ${user.did}`.execute(
      t.ctx.db,
    )
    const loose = await keyPackage(user)
    await t.seed.publishKeyPackage(user, loose)
    const before = await unusedKeyPackages(t.ctx.db, user)
    const refs = phoneRefs.filter((ref) => ref !== used.keyPackageHash)
    expect(refs.map((ref) => before[ref])).toEqual([phoneId, phoneId, phoneId])

    // The phone still holds two of its unused packages (one in upper case, as a client may write it) and the
    // one the Welcome names, and lost the third.
    const held = [refs[1]!.toUpperCase(), refs[2]!]
    const res = await t.call(user, NSID.syncKeyPackages, { input: { localHashes: held, deviceId: phone.uuid } })
    expect(res.body).toEqual({
      serverHashes: [refs[1], refs[2]].sort(),
      orphanedCount: 1,
      deletedCount: 1,
      orphanedHashes: [refs[0]],
      remainingAvailable: 2,
      deviceId: phoneId,
    })
    assertOutputOf('clientEra', NSID.syncKeyPackages, res.body)
    const after = await unusedKeyPackages(t.ctx.db, user)
    expect(after[refs[0]!]).toBeUndefined()
    // The laptop's packages and the loose ones are not the phone's to drop.
    expect(Object.keys(after)).toHaveLength(Object.keys(before).length - 1)
    expect(after[await refOf(loose)]).toBeNull()
    // The Welcome names a package the phone no longer holds: gone, so it joins by external commit.
    const waiting = await t.call(user, NSID.getWelcome, { params: { convoId: convo.body.id } })
    expect(waiting).toMatchObject({ status: 404, body: { error: 'WelcomeNotFound' } })

    // By its mlsDid and its id, the same device; an empty list drops all it has.
    const none = await t.call(user, NSID.syncKeyPackages, {
      input: { localHashes: [], deviceId: `${user.did}#${phoneId}` },
    })
    expect(none.body).toMatchObject({ serverHashes: [], orphanedCount: 2, remainingAvailable: 0, deviceId: phoneId })
    expect(
      (await t.call(user, NSID.syncKeyPackages, { input: { localHashes: [], deviceId: phoneId } })).body,
    ).toMatchObject({
      orphanedCount: 0,
    })
  })

  it('keeps a Welcome whose package the device still holds; refuses an unknown device and malformed hashes', async () => {
    const user = await TestUser.create()
    const friend = await TestUser.create()
    const device = await TestDevice.of(user)
    const packages = await device.keyPackages(2)
    const deviceId = (await t.call(user, NSID.registerDevice, { input: device.registration(packages) })).body.deviceId
    const claimed = await t.call(friend, NSID.getKeyPackages, { params: { dids: [user.did] } })
    const used = base64Bytes(claimed.body.keyPackages[0]!.keyPackage)
    const prepared = await t.seed.prepareConvo(friend, [user], {}, { keyPackages: [used] })
    const convo = await t.call(friend, NSID.createConvo, { input: prepared.input })
    await sql`UPDATE welcome_delivery SET device_id = ${deviceId} WHERE convo_id = ${convo.body.id}`.execute(t.ctx.db)
    const localHashes = await Promise.all(packages.map(refOf))
    const res = await t.call(user, NSID.syncKeyPackages, { input: { localHashes, deviceId } })
    const left = localHashes.filter((ref) => ref !== claimed.body.keyPackages[0]!.keyPackageHash)
    expect(res.body).toMatchObject({ serverHashes: left, orphanedCount: 0, remainingAvailable: 1 })
    expect((await t.call(user, NSID.getWelcome, { params: { convoId: convo.body.id } })).status).toBe(200)

    for (const [localHashes, name] of [
      [['xyz'], deviceId],
      [['ab'], deviceId],
    ] as const) {
      const bad = await t.call(user, NSID.syncKeyPackages, { input: { localHashes: [...localHashes], deviceId: name } })
      expect(bad).toMatchObject({ status: 400, body: { error: 'InvalidRequest' } })
    }
    for (const name of ['nope', `${friend.did}#${deviceId}`, '']) {
      const bad = await t.call(user, NSID.syncKeyPackages, { input: { localHashes: [], deviceId: name } })
      expect(bad).toMatchObject({ status: 404, body: { error: 'DeviceNotFound' } })
    }
    const tooMany = Array.from({ length: 201 }, () => 'ab'.repeat(32))
    expect((await t.callRaw(user, NSID.syncKeyPackages, { input: { localHashes: tooMany, deviceId } })).status).toBe(
      400,
    )
    expect((await t.callRaw(user, NSID.syncKeyPackages, { input: { localHashes: 'x', deviceId } })).status).toBe(400)
    // Nothing was withdrawn by the refusals.
    expect(Object.keys(await unusedKeyPackages(t.ctx.db, user))).toEqual(left)
  })
})
