import { execFile } from 'node:child_process'
import path from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { projectRoot } from '../../src/paths.js'
import { NSID, startTestApp, TestUser, type TestApp } from '../helpers/index.js'
import { testAppForFile } from '../helpers/per-file.js'

const run = promisify(execFile)
const t: TestApp = testAppForFile()
/** A second instance on the same database, reading the takedowns every second. */
let other: TestApp
let alice: TestUser
let bob: TestUser

beforeAll(async () => {
  other = await startTestApp({ testDb: t.testDb, config: { TAKEDOWN_REFRESH_SECONDS: '1' } })
  ;[alice, bob] = (await Promise.all([TestUser.create(), TestUser.create()])) as [TestUser, TestUser]
})
afterAll(async () => {
  await other?.close()
})

/** `npm run admin -- <args>`, from the sources, on the test database; answers its JSON. */
async function admin(...args: string[]): Promise<Record<string, unknown>> {
  const { stdout } = await run(
    process.execPath,
    ['--import', 'tsx', path.join(projectRoot, 'src/admin-cli.ts'), ...args],
    {
      cwd: projectRoot,
      env: { PATH: process.env.PATH ?? '', DATABASE_URL: t.testDb.url },
    },
  )
  return JSON.parse(stdout) as Record<string, unknown>
}

describe('npm run admin', () => {
  it('takes an account down: its calls are refused, saying so, and its key packages withdrawn; restore lifts it', async () => {
    const convo = await t.seed.createConvo(alice, [bob])
    await t.seed.publishKeyPackage(bob)
    await t.seed.publishKeyPackage(bob)
    expect(await admin('takedown', bob.did, '--reason', 'spam')).toMatchObject({
      did: bob.did,
      takenDown: true,
      withdrawnKeyPackages: 2,
      note: expect.stringMatching(/within 10 s \(TAKEDOWN_REFRESH_SECONDS\)/),
    })
    await t.ctx.takedowns.refresh()
    for (const res of [
      await t.call(bob, NSID.getConvos),
      await t.seed.sendMessage(bob, convo.id),
      await t.call(bob, NSID.getKeyPackageStats),
    ]) {
      expect([res.status, res.body.error]).toEqual([403, 'AccountTakedown'])
      expect(res.body.message).toBe(
        `The account ${bob.did} has been taken down by the operator of this server: its calls are refused`,
      )
    }
    // No one gets a key package of bob's to add him anywhere.
    const claimed = await t.call(alice, NSID.getKeyPackages, { params: { dids: [bob.did] } })
    expect(claimed.body.keyPackages).toEqual([])
    // The other instance reads the list every second: the takedown reaches it too.
    await expect
      .poll(async () => (await other.call(bob, NSID.getConvos)).status, { timeout: 10_000, interval: 200 })
      .toBe(403)
    expect((await t.call(alice, NSID.getConvos)).status).toBe(200)

    expect(await admin('restore', bob.did)).toMatchObject({ did: bob.did, restored: true })
    expect(await admin('restore', bob.did)).toEqual({ did: bob.did, restored: false })
    await t.ctx.takedowns.refresh()
    expect((await t.call(bob, NSID.getConvos)).status).toBe(200)
  })

  it('looks up an account (its devices, conversations and key packages, no content) and counts what the server holds', async () => {
    const carol = await TestUser.create()
    await t.seed.createConvo(alice, [carol])
    await t.ctx.db
      .insertInto('device')
      .values({
        user_did: carol.did,
        device_id: 'phone',
        name: "Carol's phone",
        signature_public_key: new Uint8Array(32),
        mls_signature_key: new Uint8Array(32),
      })
      .execute()
    const found = await admin('lookup', carol.did)
    expect(found).toEqual({
      did: carol.did,
      takenDown: null,
      devices: [
        { deviceId: 'phone', name: "Carol's phone", registeredAt: expect.any(String), lastSeenAt: expect.any(String) },
      ],
      conversations: 1,
      keyPackagesAvailable: 0,
    })
    const stats = await admin('stats')
    expect(Object.keys(stats).sort()).toEqual(
      [
        'conversations',
        'devices',
        'keyPackagesAvailable',
        'memberships',
        'members',
        'messages',
        'reportsPending',
        'takenDown',
      ].sort(),
    )
    expect(stats).toMatchObject({ devices: 1, takenDown: 0 })
    expect(stats.conversations).toBeGreaterThanOrEqual(2)
  })

  it('refuses what is not a command, or a DID that is none, with its usage', async () => {
    for (const args of [['sideways'], ['takedown', 'bob'], []]) {
      await expect(admin(...args)).rejects.toMatchObject({ stderr: expect.stringContaining('usage: npm run admin') })
    }
  })
})
