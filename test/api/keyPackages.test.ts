import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  encodeBase64,
  hex,
  keyPackage,
  keyPackageRef,
  lifetimeFromNow,
  NSID,
  startTestApp,
  SUITE,
  type TestApp,
  TestUser,
} from '../helpers/index.js'

let t: TestApp
let alice: TestUser
let bob: TestUser

beforeAll(async () => {
  t = await startTestApp({ config: { MAX_KEY_PACKAGES_PER_USER: '3', KEY_PACKAGE_REPLENISH_THRESHOLD: '2' } })
  alice = await TestUser.create()
  bob = await TestUser.create()
})
afterAll(async () => {
  await t?.close()
})

describe('publishKeyPackage', () => {
  it('stores packages, reports how many are left, and hands each out once', async () => {
    const owner = await TestUser.create()
    const first = await keyPackage(owner)
    expect((await t.seed.publishKeyPackage(owner, first)).body).toEqual({ available: 1 })
    expect((await t.seed.publishKeyPackage(owner)).body).toEqual({ available: 2 })
    const before = await t.call(owner, NSID.getKeyPackageStats)
    expect(before.body).toMatchObject({ available: 2, threshold: 2, needsReplenish: false, total: 2, consumed: 0 })
    const got = await t.call(alice, NSID.getKeyPackages, { params: { dids: [owner.did] } })
    // With its KeyPackageRef as the client-era client recomputes it.
    const keyPackageHash = hex(await keyPackageRef(first))
    expect(got.body).toEqual({
      keyPackages: [{ did: owner.did, keyPackage: encodeBase64(first), cipherSuite: SUITE, keyPackageHash }],
    })
    // Below the threshold once one is handed out; the caller may name itself, as the client-era lexicon allows.
    const stats = await t.call(owner, NSID.getKeyPackageStats, { params: { did: owner.did } })
    expect(stats.body).toEqual({
      available: 1,
      threshold: 2,
      needsReplenish: true,
      total: 2,
      consumed: 1,
      consumedLast24h: 1,
      consumedLast7d: 1,
      averageDailyConsumption: 0,
      lastResort: false,
      lastResortHandouts: 0,
    })
    // Another's stock of key packages is not shown.
    const others = await t.call(alice, NSID.getKeyPackageStats, { params: { did: owner.did } })
    expect(others.status).toBe(400)
    expect(others.body).toMatchObject({ error: 'InvalidDid' })
  })

  it('refuses duplicates, bad base64, unknown suites, past and far expiries, and too many', async () => {
    const owner = await TestUser.create()
    const data = await keyPackage(owner)
    expect((await t.seed.publishKeyPackage(owner, data)).status).toBe(200)
    const dup = await t.seed.publishKeyPackage(owner, data)
    expect(dup.status).toBe(409)
    expect(dup.body.error).toBe('DuplicateKeyPackage')
    const bad = await t.call(owner, NSID.publishKeyPackage, { input: { keyPackage: '!!!', cipherSuite: SUITE } })
    expect(bad.body.error).toBe('InvalidKeyPackage')
    const suite = await t.seed.publishKeyPackage(owner, await keyPackage(owner), { cipherSuite: 'X' })
    expect(suite.body.error).toBe('InvalidCipherSuite')
    const past = await t.seed.publishKeyPackage(owner, await keyPackage(owner), {
      expires: new Date(Date.now() - 1000).toISOString(),
    })
    expect(past).toMatchObject({
      status: 400,
      body: { error: 'InvalidRequest', message: expect.stringContaining('expires') },
    })
    const far = await t.seed.publishKeyPackage(owner, await keyPackage(owner), {
      expires: new Date(Date.now() + 91 * 24 * 3600 * 1000).toISOString(),
    })
    expect(far.body.error).toBe('ExpirationTooFar')
    expect((await t.seed.publishKeyPackage(owner)).status).toBe(200)
    expect((await t.seed.publishKeyPackage(owner)).status).toBe(200)
    const full = await t.seed.publishKeyPackage(owner)
    expect(full.status).toBe(400)
    expect(full.body.error).toBe('TooManyKeyPackages')
  })

  it('stores its KeyPackageRef, ends with its lifetime, and knows it again when it comes bare', async () => {
    const owner = await TestUser.create()
    const lifetime = lifetimeFromNow(-60n, 3600n)
    const data = await keyPackage(owner, { lifetime })
    expect((await t.seed.publishKeyPackage(owner, data)).status).toBe(200)
    const stored = () =>
      t.ctx.db
        .selectFrom('key_package')
        .select(['ref', 'expires_at'])
        .where('owner_did', '=', owner.did)
        .orderBy('id')
        .execute()
    const [row] = await stored()
    expect(Buffer.from(row!.ref!)).toEqual(Buffer.from(await keyPackageRef(data)))
    expect(row!.expires_at.getTime()).toBe(Number(lifetime.notAfter) * 1000)
    // The bare KeyPackage inside the MLSMessage: the same package, the same ref.
    const bare = await t.seed.publishKeyPackage(owner, data.subarray(4))
    expect(bare.status).toBe(409)
    expect(bare.body.error).toBe('DuplicateKeyPackage')
    // An earlier `expires` than the lifetime's end wins.
    const expires = new Date(Date.now() + 600_000)
    expect(
      (await t.seed.publishKeyPackage(owner, await keyPackage(owner), { expires: expires.toISOString() })).status,
    ).toBe(200)
    expect((await stored())[1]!.expires_at.getTime()).toBe(expires.getTime())
  })
})

describe('getKeyPackages', () => {
  it('reports DIDs without packages as missing and filters by cipher suite', async () => {
    const owner = await TestUser.create()
    await t.seed.publishKeyPackage(owner)
    const other = await t.call(alice, NSID.getKeyPackages, {
      params: { dids: [owner.did], cipherSuite: 'MLS_128_DHKEMP256_AES128GCM_SHA256_P256' },
    })
    expect(other.body).toEqual({ keyPackages: [], missing: [owner.did] })
    const both = await t.call(alice, NSID.getKeyPackages, { params: { dids: [owner.did, bob.did] } })
    expect(both.body.keyPackages.map((k) => k.did)).toEqual([owner.did])
    expect(both.body.missing).toEqual([bob.did])
  })

  it('hands out each package at most once under 20 concurrent fetches', async () => {
    const owner = await TestUser.create()
    for (let i = 0; i < 3; i++) await t.seed.publishKeyPackage(owner)
    const callers = await Promise.all(Array.from({ length: 20 }, () => TestUser.create()))
    const results = await Promise.all(
      callers.map((c) => t.call(c, NSID.getKeyPackages, { params: { dids: [owner.did] } })),
    )
    expect(results.every((r) => r.status === 200)).toBe(true)
    const handed = results.flatMap((r) => r.body.keyPackages.map((k) => k.keyPackage))
    expect(handed).toHaveLength(3)
    expect(new Set(handed).size).toBe(3)
    expect(results.filter((r) => r.body.missing?.includes(owner.did))).toHaveLength(17)
  })

  it('refuses malformed DIDs', async () => {
    const res = await t.call(alice, NSID.getKeyPackages, { params: { dids: ['not-a-did'] } })
    expect(res).toMatchObject({
      status: 400,
      body: { error: 'InvalidRequest', message: expect.stringContaining('dids') },
    })
  })
})
