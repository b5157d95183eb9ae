import { sql } from 'kysely'
import { describe, expect, it } from 'vitest'
import { countRows, deviceToken, NSID, registeredDevice, TestUser } from '../helpers/index.js'
import { testAppForFile } from '../helpers/per-file.js'

const t = testAppForFile()

const tokensOf = async (did: string) =>
  t.ctx.db
    .selectFrom('push_token')
    .select(['device_id', 'token', 'platform'])
    .where('user_did', '=', did)
    .orderBy('device_id')
    .execute()

const register = (
  user: TestUser,
  input: { deviceId: string; pushToken: string; platform?: string; deviceName?: string },
) => t.call(user, NSID.registerDeviceToken, { input })

describe('registerDeviceToken', () => {
  it('stores the token of the caller’s own device, in lowercase hex, for iOS unless told otherwise', async () => {
    const alice = await TestUser.create()
    const deviceId = await registeredDevice(t, alice)
    const token = deviceToken().toUpperCase()
    const res = await register(alice, { deviceId, pushToken: token })
    expect(res.status).toBe(200)
    expect(res.body).toEqual({ success: true })
    expect(await tokensOf(alice.did)).toEqual([{ device_id: deviceId, token: token.toLowerCase(), platform: 'ios' }])
  })

  it('registering again (the device named by its mlsDid too) replaces its token; its name comes along when given', async () => {
    const alice = await TestUser.create()
    const deviceId = await registeredDevice(t, alice)
    const [first, second] = [deviceToken(), deviceToken()]
    expect((await register(alice, { deviceId, pushToken: first })).status).toBe(200)
    const mlsDid = `${alice.did}#${deviceId}`
    expect(
      (await register(alice, { deviceId: mlsDid, pushToken: second, platform: 'ios', deviceName: 'Alice’s iPad' }))
        .status,
    ).toBe(200)
    expect(await tokensOf(alice.did)).toEqual([{ device_id: deviceId, token: second, platform: 'ios' }])
    const device = await t.ctx.db
      .selectFrom('device')
      .select('name')
      .where('device_id', '=', deviceId)
      .executeTakeFirst()
    expect(device?.name).toBe('Alice’s iPad')
  })

  it('a token is one device’s: registering it for another device of the caller moves it there', async () => {
    const alice = await TestUser.create()
    const [old, fresh] = [await registeredDevice(t, alice), await registeredDevice(t, alice)]
    const token = deviceToken()
    expect((await register(alice, { deviceId: old, pushToken: token })).status).toBe(200)
    expect((await register(alice, { deviceId: fresh, pushToken: token })).status).toBe(200)
    expect(await tokensOf(alice.did)).toEqual([{ device_id: fresh, token, platform: 'ios' }])
  })

  it('another account on the same phone registers the same token for its own device: each keeps it', async () => {
    const [alice, bob] = await Promise.all([TestUser.create(), TestUser.create()])
    const token = deviceToken()
    const aliceDevice = await registeredDevice(t, alice)
    const bobDevice = await registeredDevice(t, bob)
    expect((await register(alice, { deviceId: aliceDevice, pushToken: token })).status).toBe(200)
    expect((await register(bob, { deviceId: bobDevice, pushToken: token })).status).toBe(200)
    expect(await countRows(t.ctx.db, 'push_token', sql`token = ${token}`)).toBe(2)
  })

  it('refuses a device that is not the caller’s (400 DeviceNotFound), touching nothing', async () => {
    const [alice, bob] = await Promise.all([TestUser.create(), TestUser.create()])
    const aliceDevice = await registeredDevice(t, alice)
    for (const deviceId of [aliceDevice, 'never-registered']) {
      const res = await register(bob, { deviceId, pushToken: deviceToken() })
      expect(res.status).toBe(400)
      expect(res.body).toMatchObject({ error: 'DeviceNotFound' })
    }
    expect(await tokensOf(alice.did)).toEqual([])
    expect(await tokensOf(bob.did)).toEqual([])
  })

  it('refuses what is not a device token, an unknown platform and an overlong name (400, naming the field)', async () => {
    const alice = await TestUser.create()
    const deviceId = await registeredDevice(t, alice)
    const cases = [
      [{ deviceId, pushToken: 'not hex at all' }, /pushToken/],
      [{ deviceId, pushToken: 'abc' }, /pushToken/],
      [{ deviceId, pushToken: 'ab'.repeat(101) }, /pushToken/],
      [{ deviceId, pushToken: deviceToken(), platform: 'symbian' }, /platform/],
      [{ deviceId, pushToken: deviceToken(), deviceName: 'x'.repeat(101) }, /deviceName/],
    ] as const
    for (const [input, field] of cases) {
      const res = await register(alice, input)
      expect(res.status).toBe(400)
      expect(res.body).toMatchObject({ error: 'InvalidRequest', message: expect.stringMatching(field) })
    }
    expect(await tokensOf(alice.did)).toEqual([])
  })

  it('a device deleted (deleteDevice) takes its token with it', async () => {
    const alice = await TestUser.create()
    const deviceId = await registeredDevice(t, alice)
    expect((await register(alice, { deviceId, pushToken: deviceToken() })).status).toBe(200)
    expect((await t.call(alice, NSID.deleteDevice, { input: { deviceId } })).status).toBe(200)
    expect(await tokensOf(alice.did)).toEqual([])
  })
})

describe('unregisterDeviceToken', () => {
  it('forgets the device’s token; again, there is nothing to forget and it still succeeds', async () => {
    const alice = await TestUser.create()
    const [phone, tablet] = [await registeredDevice(t, alice), await registeredDevice(t, alice)]
    const tabletToken = deviceToken()
    expect((await register(alice, { deviceId: phone, pushToken: deviceToken() })).status).toBe(200)
    expect((await register(alice, { deviceId: tablet, pushToken: tabletToken })).status).toBe(200)
    for (let i = 0; i < 2; i++) {
      const res = await t.call(alice, NSID.unregisterDeviceToken, { input: { deviceId: phone } })
      expect(res.status).toBe(200)
      expect(res.body).toEqual({ success: true })
    }
    expect(await tokensOf(alice.did)).toEqual([{ device_id: tablet, token: tabletToken, platform: 'ios' }])
  })

  it('refuses another user’s device (400 DeviceNotFound), leaving its token', async () => {
    const [alice, bob] = await Promise.all([TestUser.create(), TestUser.create()])
    const deviceId = await registeredDevice(t, alice)
    const token = deviceToken()
    expect((await register(alice, { deviceId, pushToken: token })).status).toBe(200)
    const res = await t.call(bob, NSID.unregisterDeviceToken, { input: { deviceId } })
    expect(res.status).toBe(400)
    expect(res.body).toMatchObject({ error: 'DeviceNotFound' })
    expect(await tokensOf(alice.did)).toEqual([{ device_id: deviceId, token, platform: 'ios' }])
  })
})
