import { randomBytes } from 'node:crypto'
import { sql } from 'kysely'
import { describe, expect, it } from 'vitest'
import {
  assertOutputOf,
  bytesJson,
  encodeBase64,
  hex,
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

const t = testAppForFile({ config: { MAX_DEVICES_PER_USER: '3' } })

/** What a user has on the server: its devices and key packages (a refused request must leave them as they were). */
async function stateOf(user: TestUser) {
  const { rows } = await sql<{ state: string }>`SELECT concat_ws(',',
    (SELECT string_agg(device_id || ':' || coalesce(device_uuid, '') || ':' || encode(mls_signature_key, 'hex'), ';' ORDER BY device_id)
       FROM device WHERE user_did = ${user.did}),
    (SELECT string_agg(encode(ref, 'hex') || ':' || coalesce(device_id, '') || ':' || (consumed_at IS NULL)::text, ';' ORDER BY ref)
       FROM key_package WHERE owner_did = ${user.did})) AS state`.execute(t.ctx.db)
  return rows[0]!.state
}

/** The request is refused with `status` and `error`, and changes nothing of `user`'s; its message, for the reason. */
async function expectRefused(
  user: TestUser,
  request: () => Promise<{ status: number; body: { error?: string; message?: string } }>,
  status: number,
  error: string,
): Promise<string> {
  const before = await stateOf(user)
  const { status: got, body } = await request()
  expect({ status: got, error: body.error }, body.message).toEqual({ status, error })
  expect(await stateOf(user)).toBe(before)
  return body.message ?? ''
}

const refsOf = async (packages: Uint8Array[]) => Promise.all(packages.map(async (p) => hex(await keyPackageRef(p))))

async function register(
  device: TestDevice,
  packages: Uint8Array[],
  extra: Parameters<TestDevice['registration']>[1] = {},
) {
  return t.call(device.user, NSID.registerDevice, { input: device.registration(packages, extra) })
}

describe('registerDevice', () => {
  it('registers a device with its key packages, bound to it by their key, and names its conversations by group id', async () => {
    const user = await TestUser.create()
    const friend = await TestUser.create()
    const convo = await t.seed.createConvo(friend, [user])
    const device = await TestDevice.of(user)
    const packages = await device.keyPackages(3)
    const res = await register(device, packages)
    expect(res.status).toBe(200)
    const { deviceId } = res.body
    expect(deviceId).toMatch(/^[0-9a-f]{16}$/)
    expect(res.body).toEqual({ deviceId, mlsDid: `${user.did}#${deviceId}`, autoJoinedConvos: [convo.groupId] })
    // The client-era client decodes it.
    assertOutputOf('clientEra', NSID.registerDevice, res.body)
    const refs = await refsOf(packages)
    expect(await unusedKeyPackages(t.ctx.db, user)).toEqual(Object.fromEntries(refs.map((ref) => [ref, deviceId])))
    const row = await t.ctx.db
      .selectFrom('device')
      .selectAll()
      .where('user_did', '=', user.did)
      .executeTakeFirstOrThrow()
    expect(row).toMatchObject({ device_id: deviceId, device_uuid: device.uuid, name: 'iPhone' })
    // Both keys as sent: the registration key, and the MLS key of its key packages.
    expect(Buffer.from(row.signature_public_key)).toEqual(Buffer.from(device.signaturePublicKey))
    expect(Buffer.from(row.mls_signature_key)).toEqual(Buffer.from(device.keys.publicKey))
    // Its packages are handed out, one per device.
    const got = await t.call(friend, NSID.getKeyPackages, { params: { dids: [user.did] } })
    expect(got.body.keyPackages).toHaveLength(1)
  })

  it('binds the packages the user published before registering, signed by the same key', async () => {
    const user = await TestUser.create()
    const device = await TestDevice.of(user)
    const [early] = await device.keyPackages(1)
    const other = await keyPackage(user)
    await t.seed.publishKeyPackage(user, early)
    await t.seed.publishKeyPackage(user, other)
    const res = await register(device, await device.keyPackages(1))
    const bound = await unusedKeyPackages(t.ctx.db, user)
    expect(bound[hex(await keyPackageRef(early!))]).toBe(res.body.deviceId)
    // Another key's package is no device's.
    expect(bound[hex(await keyPackageRef(other))]).toBeNull()
    // Published later by publishKeyPackage, a package of its key is bound too: by fact, whatever the body says.
    const [later] = await device.keyPackages(1)
    await t.seed.publishKeyPackage(user, later)
    expect((await unusedKeyPackages(t.ctx.db, user))[hex(await keyPackageRef(later!))]).toBe(res.body.deviceId)
  })

  it('knows a device again by its deviceUuid, deviceUUID, MLS key or registration key, and keeps its id', async () => {
    const user = await TestUser.create()
    const device = await TestDevice.of(user)
    const first = await register(device, await device.keyPackages(1))
    const { deviceId } = first.body
    // By its UUID, under either name, with a new name: the same device.
    expect((await register(device, await device.keyPackages(1), { deviceName: 'Work phone' })).body.deviceId).toBe(
      deviceId,
    )
    const legacy = await register(device, await device.keyPackages(1), {
      deviceUuid: undefined,
      deviceUUID: device.uuid,
    })
    expect(legacy.body.deviceId).toBe(deviceId)
    // Without its UUID: by the MLS key its packages are signed with, or by its registration key.
    expect((await register(device, await device.keyPackages(1), { deviceUuid: undefined })).body.deviceId).toBe(
      deviceId,
    )
    const newMlsKey = await TestDevice.of(user)
    const byRegistrationKey = await t.call(user, NSID.registerDevice, {
      input: {
        ...newMlsKey.registration(await newMlsKey.keyPackages(1)),
        deviceUuid: undefined,
        signaturePublicKey: bytesJson(device.signaturePublicKey),
      },
    })
    expect(byRegistrationKey.body.deviceId).toBe(deviceId)
    const rows = await t.ctx.db.selectFrom('device').selectAll().where('user_did', '=', user.did).execute()
    expect(rows).toHaveLength(1)
    expect(rows[0]).toMatchObject({ name: 'iPhone', device_uuid: device.uuid })
    // Its MLS key is now the new one.
    expect(Buffer.from(rows[0]!.mls_signature_key)).toEqual(Buffer.from(newMlsKey.keys.publicKey))
  })

  it('registers a device once when its first registrations race, and follows its MLS key to a new UUID', async () => {
    const user = await TestUser.create()
    const device = await TestDevice.of(user)
    const attempts = await Promise.all([1, 2, 3].map(async () => register(device, await device.keyPackages(1))))
    expect(attempts.map((res) => res.status)).toEqual([200, 200, 200])
    const ids = new Set(attempts.map((res) => res.body.deviceId))
    expect(ids.size).toBe(1)
    // Its packages prove the key: the same device, under the UUID it now has.
    const renamed = await register(device, await device.keyPackages(1), { deviceUuid: 'NEW-UUID' })
    expect(ids.has(renamed.body.deviceId)).toBe(true)
    const rows = await t.ctx.db.selectFrom('device').select('device_uuid').where('user_did', '=', user.did).execute()
    expect(rows).toEqual([{ device_uuid: 'NEW-UUID' }])
  })

  it('keeps the unused packages of the key it registers again with, and withdraws those of a key it replaced', async () => {
    const user = await TestUser.create()
    const device = await TestDevice.of(user)
    const kept = await device.keyPackages(2)
    const { deviceId } = (await register(device, kept)).body
    // A retry of the same registration: the same packages, stored once, still the device's.
    expect((await register(device, kept)).status).toBe(200)
    const more = await device.keyPackages(1)
    await register(device, more)
    expect(await unusedKeyPackages(t.ctx.db, user)).toEqual(
      Object.fromEntries((await refsOf([...kept, ...more])).map((ref) => [ref, deviceId])),
    )
    // The same device (by its UUID) with a new MLS key: it cannot open Welcomes to its old packages.
    const reinstalled = await TestDevice.of(user)
    const fresh = await reinstalled.keyPackages(1)
    const res = await t.call(user, NSID.registerDevice, {
      input: { ...reinstalled.registration(fresh), deviceUuid: device.uuid },
    })
    expect(res.body.deviceId).toBe(deviceId)
    expect(await unusedKeyPackages(t.ctx.db, user)).toEqual(
      Object.fromEntries((await refsOf(fresh)).map((ref) => [ref, deviceId])),
    )
  })

  it('gives each device its own id, up to MAX_DEVICES_PER_USER', async () => {
    const user = await TestUser.create()
    const devices = await Promise.all([1, 2, 3, 4].map(() => TestDevice.of(user)))
    const ids = []
    for (const device of devices.slice(0, 3))
      ids.push((await register(device, await device.keyPackages(1))).body.deviceId)
    expect(new Set(ids).size).toBe(3)
    const fourth = devices[3]!
    const packages = await fourth.keyPackages(1)
    expect(await expectRefused(user, () => register(fourth, packages), 400, 'TooManyDevices')).toContain('3')
    // A known device still registers again.
    expect((await register(devices[0]!, await devices[0]!.keyPackages(1))).body.deviceId).toBe(ids[0])
  })

  it('refuses wrong types, too many or no packages, bad keys, packages of another DID, of two keys, or of another device, storing nothing', async () => {
    const user = await TestUser.create()
    const device = await TestDevice.of(user)
    const other = await TestDevice.of(user)
    const { deviceId } = (await register(other, await other.keyPackages(1))).body
    const one = await device.keyPackages(1)
    const raw = (input: unknown) => () => t.callRaw(user, NSID.registerDevice, { input })
    const valid = device.registration(one)
    // Wrong types, as the lexicon says.
    await expectRefused(user, raw({ ...valid, keyPackages: 'many' }), 400, 'InvalidRequest')
    await expectRefused(user, raw({ ...valid, signaturePublicKey: 'AAAA' }), 400, 'InvalidRequest')
    await expectRefused(user, raw({ ...valid, deviceName: 7 }), 400, 'InvalidRequest')
    await expectRefused(user, raw({ ...valid, deviceName: '' }), 400, 'InvalidRequest')
    await expectRefused(
      user,
      raw({ ...valid, keyPackages: [{ keyPackage: 1, cipherSuite: SUITE }] }),
      400,
      'InvalidRequest',
    )
    // Counts and keys.
    await expectRefused(user, raw({ ...valid, keyPackages: [] }), 400, 'InvalidKeyPackages')
    const tooMany = Array.from({ length: 201 }, () => keyPackageItem(one[0]!))
    expect(await expectRefused(user, raw({ ...valid, keyPackages: tooMany }), 400, 'InvalidKeyPackages')).toMatch(/201/)
    await expectRefused(
      user,
      raw({ ...valid, signaturePublicKey: bytesJson(randomBytes(31)) }),
      400,
      'InvalidSignatureKey',
    )
    await expectRefused(user, raw({ ...valid, deviceUUID: 'A', deviceUuid: 'B' }), 400, 'InvalidRequest')
    await expectRefused(user, raw({ ...valid, deviceUuid: 'x'.repeat(129) }), 400, 'InvalidRequest')
    // A package of another DID, with a bad signature, not a package: refused by its index, with why.
    const stranger = await TestUser.create()
    const foreign = await keyPackage(stranger, { signatureKeys: device.keys })
    expect(await expectRefused(user, () => register(device, [...one, foreign]), 400, 'InvalidKeyPackages')).toMatch(
      /keyPackages\[1\]: InvalidKeyPackage: .*your DID/,
    )
    const tampered = Uint8Array.from(one[0]!)
    tampered[tampered.length - 1]! ^= 1
    expect(await expectRefused(user, () => register(device, [tampered]), 400, 'InvalidKeyPackages')).toMatch(
      /keyPackages\[0\]: InvalidKeyPackage: .*signature/,
    )
    expect(
      await expectRefused(
        user,
        raw({ ...valid, keyPackages: [{ ...keyPackageItem(one[0]!), cipherSuite: 'X' }] }),
        400,
        'InvalidKeyPackages',
      ),
    ).toMatch(/InvalidCipherSuite/)
    // Packages of two keys: which is the device's?
    const mixed = [...one, ...(await other.keyPackages(1))]
    expect(await expectRefused(user, () => register(device, mixed), 400, 'InvalidKeyPackages')).toMatch(
      /keyPackages\[1\] is signed by another key/,
    )
    // Registered, each device's UUID with the other's MLS key: which device would it be?
    expect((await register(device, one)).status).toBe(200)
    const othersPackages = await other.keyPackages(1)
    await expectRefused(user, () => register(device, othersPackages), 409, 'DeviceAlreadyRegistered')
    const devicesPackages = await device.keyPackages(1)
    await expectRefused(user, () => register(other, devicesPackages), 409, 'DeviceAlreadyRegistered')
    expect((await t.call(user, NSID.listDevices)).body.devices.map((d) => d.deviceId)).toContain(deviceId)
  })
})

describe('listDevices and deleteDevice', () => {
  it('lists the caller’s devices, the latest seen first, with their unused key packages counted', async () => {
    const user = await TestUser.create()
    const [phone, laptop] = await Promise.all([TestDevice.of(user), TestDevice.of(user)])
    const phoneId = (await register(phone, await phone.keyPackages(2))).body.deviceId
    const laptopId = (await register(laptop, await laptop.keyPackages(3), { deviceName: 'Mac', deviceUuid: undefined }))
      .body.deviceId
    const res = await t.call(user, NSID.listDevices)
    expect(res.body.devices).toEqual([
      {
        deviceId: laptopId,
        deviceName: 'Mac',
        credentialDid: `${user.did}#${laptopId}`,
        lastSeenAt: expect.any(String),
        registeredAt: expect.any(String),
        keyPackageCount: 3,
      },
      {
        deviceId: phoneId,
        deviceName: 'iPhone',
        deviceUUID: phone.uuid,
        credentialDid: `${user.did}#${phoneId}`,
        lastSeenAt: expect.any(String),
        registeredAt: expect.any(String),
        keyPackageCount: 2,
      },
    ])
    assertOutputOf('clientEra', NSID.listDevices, res.body)
    // A handed-out package no longer counts.
    await t.call(await TestUser.create(), NSID.getKeyPackages, { params: { dids: [user.did] } })
    const counts = (await t.call(user, NSID.listDevices)).body.devices.map((d) => d.keyPackageCount)
    expect(counts).toEqual([2, 1])
    // Others see their own devices only.
    expect((await t.call(await TestUser.create(), NSID.listDevices)).body).toEqual({ devices: [] })
  })

  it('deletes a device with its unused key packages and the Welcomes waiting for it; the rest stays', async () => {
    const user = await TestUser.create()
    const friend = await TestUser.create()
    const [phone, laptop] = await Promise.all([TestDevice.of(user), TestDevice.of(user)])
    const phonePackages = await phone.keyPackages(3)
    const phoneId = (await register(phone, phonePackages)).body.deviceId
    const laptopId = (await register(laptop, await laptop.keyPackages(1))).body.deviceId
    // The friend adds the user: the Welcome names one package of each device.
    const claimed = await t.call(friend, NSID.getKeyPackages, { params: { dids: [user.did] } })
    expect(claimed.body.keyPackages).toHaveLength(2)
    const prepared = await t.seed.prepareConvo(
      friend,
      [user, user],
      {},
      {
        keyPackages: claimed.body.keyPackages.map((kp) => Buffer.from(kp.keyPackage, 'base64')),
      },
    )
    const convo = await t.call(friend, NSID.createConvo, { input: { ...prepared.input, initialMembers: [user.did] } })
    expect(convo.status).toBe(200)
    // createConvo recorded the Welcome for each device its packages name, and each device's leaf.

    // Named by its mlsDid, as the client names devices in places.
    const res = await t.call(user, NSID.deleteDevice, { input: { deviceId: `${user.did}#${phoneId}` } })
    expect(res.body).toEqual({ deleted: true, keyPackagesDeleted: 2 })
    assertOutputOf('clientEra', NSID.deleteDevice, res.body)
    expect((await t.call(user, NSID.listDevices)).body.devices.map((d) => d.deviceId)).toEqual([laptopId])
    // Its handed-out package stays (a Welcome names it); its unused ones are gone.
    expect(Object.values(await unusedKeyPackages(t.ctx.db, user))).toEqual([])
    const handedOut = await t.ctx.db
      .selectFrom('key_package')
      .select('device_id')
      .where('owner_did', '=', user.did)
      .where('consumed_at', 'is not', null)
      .execute()
    expect(handedOut.map((row) => row.device_id).sort()).toEqual([laptopId, phoneId].sort())
    // The Welcome waiting for it is gone; the laptop's stays; its leaf stays in the group (member_device) until a member removes it.
    const deliveries = await t.ctx.db
      .selectFrom('welcome_delivery')
      .select('device_id')
      .where('recipient_did', '=', user.did)
      .execute()
    expect(deliveries.map((row) => row.device_id)).toEqual([laptopId])
    const joined = await t.ctx.db
      .selectFrom('member_device')
      .select('device_id')
      .where('user_did', '=', user.did)
      .execute()
    expect(joined.map((row) => row.device_id).sort()).toEqual([laptopId, phoneId].sort())

    // Gone is gone; another user's device is not found either.
    for (const [caller, deviceId] of [
      [user, phoneId],
      [friend, laptopId],
      [user, 'nonexistent'],
    ] as const) {
      const again = await t.call(caller, NSID.deleteDevice, { input: { deviceId } })
      expect(again).toMatchObject({ status: 404, body: { error: 'DeviceNotFound' } })
    }
    expect((await t.callRaw(user, NSID.deleteDevice, { input: { deviceId: 5 } })).status).toBe(400)
  })
})

describe('getExpectedConversations', () => {
  it('lists the caller’s conversations by group id, with whether the device named (by id, mlsDid or UUID) is in each', async () => {
    const user = await TestUser.create()
    const friend = await TestUser.create()
    const device = await TestDevice.of(user)
    const { deviceId } = (await register(device, await device.keyPackages(1))).body
    const joined = await t.seed.createConvo(friend, [user], { metadata: { name: 'Book club' } })
    const missing = await t.seed.createConvo(friend, [user])
    await t.seed.createConvo(friend)
    await sql`INSERT INTO member_device (convo_id, user_did, device_id, joined_by) VALUES (${joined.id}, ${user.did}, ${deviceId}, 'welcome')`.execute(
      t.ctx.db,
    )
    const expected = (inGroup: Record<string, boolean> | undefined) =>
      [
        { convoId: joined.groupId, name: 'Book club', memberCount: 2, shouldBeInGroup: true },
        { convoId: missing.groupId, name: '', memberCount: 2, shouldBeInGroup: true },
      ]
        .map((c) => (inGroup ? { ...c, deviceInGroup: inGroup[c.convoId] } : c))
        .sort((a, b) => a.convoId.localeCompare(b.convoId))
    const inGroup = { [joined.groupId]: true, [missing.groupId]: false }
    for (const name of [deviceId, `${user.did}#${deviceId}`, device.uuid]) {
      const res = await t.call(user, NSID.getExpectedConversations, { params: { deviceId: name } })
      expect(res.body.conversations).toEqual(expected(inGroup))
      assertOutputOf('clientEra', NSID.getExpectedConversations, res.body)
    }
    // No device named: nothing said of one.
    expect((await t.call(user, NSID.getExpectedConversations)).body.conversations).toEqual(expected(undefined))
    // Someone else's device, or none: not found.
    for (const name of ['nope', `${friend.did}#${deviceId}`]) {
      const res = await t.call(user, NSID.getExpectedConversations, { params: { deviceId: name } })
      expect(res).toMatchObject({ status: 404, body: { error: 'DeviceNotFound' } })
    }
    expect((await t.call(friend, NSID.getExpectedConversations, { params: { deviceId } })).status).toBe(404)
  })
})

describe('optIn, optOut and getOptInStatus', () => {
  it('opting out withdraws the key packages and stops hand-outs; opted in means others can add the user', async () => {
    const user = await TestUser.create()
    const asker = await TestUser.create()
    const device = await TestDevice.of(user)
    const { deviceId } = (await register(device, await device.keyPackages(2))).body
    const status = async () =>
      (await t.call(asker, NSID.getOptInStatus, { params: { dids: [user.did, asker.did] } })).body
    expect(await status()).toEqual({
      statuses: [
        { did: user.did, optedIn: true },
        // Nothing to add the asker with.
        { did: asker.did, optedIn: false },
      ],
    })
    assertOutputOf('clientEra', NSID.getOptInStatus, await status())

    const out = await t.call(user, NSID.optOut, { input: undefined })
    expect(out.body).toEqual({ success: true })
    expect(await unusedKeyPackages(t.ctx.db, user)).toEqual({})
    expect((await status()).statuses[0]).toEqual({ did: user.did, optedIn: false })
    // Published while opted out: kept, not handed out.
    await t.seed.publishKeyPackage(user, await keyPackage(user, { lastResort: true }))
    await t.seed.publishKeyPackage(user)
    const none = await t.call(asker, NSID.getKeyPackages, { params: { dids: [user.did] } })
    expect(none.body).toEqual({ keyPackages: [], missing: [user.did] })
    expect((await status()).statuses[0]!.optedIn).toBe(false)

    const optIn = await t.call(user, NSID.optIn, { input: { deviceId } })
    expect(optIn.body).toEqual({ optedIn: true, optedInAt: expect.any(String) })
    assertOutputOf('clientEra', NSID.optIn, optIn.body)
    // Since its device was registered.
    const registered = (await t.call(user, NSID.listDevices)).body.devices[0]!.registeredAt
    expect(optIn.body.optedInAt).toBe(registered)
    expect((await status()).statuses[0]!.optedIn).toBe(true)
    expect((await t.call(asker, NSID.getKeyPackages, { params: { dids: [user.did] } })).body.keyPackages).toHaveLength(
      1,
    )
    // A last-resort package alone is enough to be added.
    await t.call(asker, NSID.getKeyPackages, { params: { dids: [user.did] } })
    expect((await status()).statuses[0]!.optedIn).toBe(true)
  })

  it('refuses an unknown device, and more than 100 DIDs', async () => {
    const user = await TestUser.create()
    expect(await t.call(user, NSID.optIn, { input: { deviceId: 'nope' } })).toMatchObject({
      status: 404,
      body: { error: 'DeviceNotFound' },
    })
    // Without a device named, the user opts in.
    expect((await t.call(user, NSID.optIn, { input: {} })).status).toBe(200)
    const dids = Array.from({ length: 101 }, (_, i) => `did:plc:user${i}`)
    expect((await t.call(user, NSID.getOptInStatus, { params: { dids } })).status).toBe(400)
    expect((await t.callRaw(user, NSID.getOptInStatus, { params: { dids: ['not-a-did'] } })).status).toBe(400)
  })
})

describe('keyPackageHash', () => {
  it('is the KeyPackageRef in hex of each package handed out', async () => {
    const user = await TestUser.create()
    const device = await TestDevice.of(user)
    const [data] = await device.keyPackages(1)
    await register(device, [data!])
    const got = await t.call(await TestUser.create(), NSID.getKeyPackages, { params: { dids: [user.did] } })
    expect(got.body.keyPackages).toEqual([
      {
        did: user.did,
        keyPackage: encodeBase64(data!),
        cipherSuite: SUITE,
        keyPackageHash: hex(await keyPackageRef(data!)),
      },
    ])
    assertOutputOf('clientEra', NSID.getKeyPackages, got.body)
    assertOutputOf('seedEra', NSID.getKeyPackages, got.body)
  })
})

describe('validateDeviceState', () => {
  const validate = async (user: TestUser, deviceId?: string) => {
    const res = await t.call(user, NSID.validateDeviceState, { params: deviceId === undefined ? {} : { deviceId } })
    expect(res.status, JSON.stringify(res.body)).toBe(200)
    assertOutputOf('clientEra', NSID.validateDeviceState, res.body)
    return res.body
  }
  const inventory = (available: number, perDevice = true) => ({
    available,
    target: 10,
    needsReplenishment: available < 10,
    ...(perDevice ? { perDeviceCount: available } : {}),
  })

  it('says what is wrong with a device from the facts: a Welcome not fetched, an addition waiting, a group it is not in, key packages, opting out', async () => {
    const user = await TestUser.create()
    const friend = await TestUser.create()
    const phone = await TestDevice.of(user)
    const phoneId = (await register(phone, await phone.keyPackages(10))).body.deviceId
    // Its only device, named or not (the iOS client names none): all is well.
    const valid = { isValid: true, issues: [], recommendations: [], expectedConvos: 0, actualConvos: 0 }
    expect(await validate(user)).toEqual({ ...valid, keyPackageInventory: inventory(10) })
    expect(await validate(user, `${user.did}#${phoneId}`)).toEqual(await validate(user))

    // The friend adds it: its Welcome waits to be fetched; one package less, one fewer than the target.
    const claimed = await t.call(friend, NSID.getKeyPackages, { params: { dids: [user.did] } })
    const prepared = await t.seed.prepareConvo(
      friend,
      [user],
      {},
      { keyPackages: claimed.body.keyPackages.map((kp) => Buffer.from(kp.keyPackage, 'base64')) },
    )
    const convo = await t.call(friend, NSID.createConvo, { input: prepared.input })
    prepared.created(convo.body)
    expect(await validate(user)).toEqual({
      isValid: false,
      issues: [
        'A Welcome is waiting for this device in 1 conversation',
        '9 key packages available to add this device, fewer than 10',
      ],
      recommendations: [
        'Fetch and process it (getWelcome), or join by external commit if it cannot be processed',
        'Publish more key packages (publishKeyPackages)',
      ],
      expectedConvos: 1,
      actualConvos: 1,
      keyPackageInventory: inventory(9),
    })
    // Fetched, and more published: nothing is wrong.
    expect((await t.call(user, NSID.getWelcome, { params: { convoId: convo.body.groupId } })).status).toBe(200)
    await register(phone, await phone.keyPackages(1))
    expect(await validate(user, phoneId)).toEqual({
      ...valid,
      expectedConvos: 1,
      actualConvos: 1,
      keyPackageInventory: inventory(10),
    })
    // A conversation it created is its own, though the server never saw its leaf.
    const mine = await t.seed.createConvo(user)
    expect(await validate(user, phoneId)).toMatchObject({ isValid: true, expectedConvos: 2, actualConvos: 2 })

    // A new device: a member has yet to add it to the friend's conversation (its own it will join by itself).
    const tablet = await TestDevice.of(user)
    const tabletId = (await register(tablet, await tablet.keyPackages(10))).body.deviceId
    const waiting = await validate(user, tabletId)
    expect(waiting).toMatchObject({
      isValid: false,
      issues: ['1 conversation waits for a member to add this device'],
      expectedConvos: 2,
      actualConvos: 1,
    })
    expect(waiting.recommendations[0]).toMatch(/getPendingDeviceAdditions/)
    // A member says it added it, but no Welcome ever named its key package: it is in neither group, nothing on the way.
    const [addition] = (
      await t.call(friend, NSID.getPendingDeviceAdditions, { params: { convoIds: [convo.body.groupId] } })
    ).body.pendingAdditions
    await t.call(friend, NSID.claimPendingDeviceAddition, { input: { pendingAdditionId: addition!.id } })
    await t.call(friend, NSID.completePendingDeviceAddition, {
      input: { pendingAdditionId: addition!.id, newEpoch: 2 },
    })
    // (The claim handed one of its key packages to the member.)
    expect(await validate(user, tabletId)).toMatchObject({
      issues: [
        'This device is not in the group of 1 conversation of yours, and nothing is on the way to it',
        '9 key packages available to add this device, fewer than 10',
      ],
      recommendations: [expect.stringMatching(/external commit/), 'Publish more key packages (publishKeyPackages)'],
      actualConvos: 1,
      keyPackageInventory: inventory(9),
    })
    expect(mine.creator).toBe(user.did)

    // Two devices and none named: the user's standing, all its packages counted. Opted out, none are left.
    expect(await validate(user)).toEqual({
      ...valid,
      expectedConvos: 2,
      actualConvos: 2,
      keyPackageInventory: inventory(19, false),
    })
    await t.call(user, NSID.optOut, { input: undefined })
    expect(await validate(user)).toMatchObject({
      issues: [
        '0 key packages available to add you, fewer than 10',
        'You opted out: no one can add you to a conversation',
      ],
      recommendations: ['Publish more key packages (publishKeyPackages)', 'Opt in (optIn) to be added again'],
    })
  })

  it('knows a user without devices by its Welcomes and key packages, and refuses a device not its own', async () => {
    const user = await TestUser.create()
    const friend = await TestUser.create()
    const convo = await t.seed.createConvo(friend, [user])
    expect(await validate(user)).toEqual({
      isValid: false,
      issues: ['A Welcome is waiting for you in 1 conversation', '0 key packages available to add you, fewer than 10'],
      recommendations: [
        'Fetch and process it (getWelcome), or join by external commit if it cannot be processed',
        'Publish more key packages (publishKeyPackages)',
      ],
      expectedConvos: 1,
      actualConvos: 0,
      keyPackageInventory: inventory(0, false),
    })
    await t.call(user, NSID.getWelcome, { params: { convoId: convo.id } })
    expect(await validate(user)).toMatchObject({ expectedConvos: 1, actualConvos: 1 })
    const device = await TestDevice.of(friend)
    const { deviceId } = (await register(device, await device.keyPackages(1))).body
    for (const name of [deviceId, 'nope']) {
      const res = await t.call(user, NSID.validateDeviceState, { params: { deviceId: name } })
      expect(res).toMatchObject({ status: 404, body: { error: 'DeviceNotFound' } })
    }
  })
})
