import { randomUUID } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { bytesToJson, captureLogs, encodeBase64, message, NSID, TestUser, welcomeOf } from '../helpers/index.js'
import { testAppForFile } from '../helpers/per-file.js'

const logs = captureLogs('info')
const { lines } = logs
const t = testAppForFile({ logger: logs.logger })

describe('logs', () => {
  it('carry a request id and the caller, show the operator lines, and never secrets', async () => {
    const alice = await TestUser.create()
    const bob = await TestUser.create()
    const convo = await t.seed.createConvo(alice, [bob])
    const welcome = welcomeOf(convo.id)
    const ciphertext = await message(alice, convo.id)
    const key = `key-${randomUUID()}`
    const token = await alice.token(NSID.sendMessage)
    const input = {
      convoId: convo.id,
      senderDid: alice.did,
      epoch: 1,
      ciphertext: bytesToJson(ciphertext),
      idempotencyKey: key,
    }
    logs.clear()
    await t.call(alice, NSID.sendMessage, { input, token, headers: { 'idempotency-key': key } })
    await t.call(alice, NSID.sendMessage, { input, token })
    await t.call(bob, NSID.getWelcome, { params: { convoId: convo.id } })
    await t.call(bob, NSID.confirmWelcome, {
      input: { convoId: convo.id, success: false, errorDetails: 'bad epoch secret' },
    })
    await t.call(bob, NSID.getWelcome, { params: { convoId: convo.id } })
    await t.call(bob, NSID.confirmWelcome, { input: { convoId: convo.id, success: true } })
    await t.call(bob, NSID.getWelcome, { params: { convoId: convo.id } })

    const requestLines = lines.filter((l) => l.req || l.res || l.reqId)
    expect(requestLines.length).toBeGreaterThan(10)
    for (const line of requestLines) expect(line.reqId).toEqual(expect.any(String))
    // After auth, lines name the caller.
    const hit = lines.find((l) => String(l.msg).startsWith('Idempotency cache HIT'))
    expect(hit).toMatchObject({
      level: 30,
      caller: alice.did,
      msg: expect.stringMatching(/^Idempotency cache HIT for key=[0-9a-f]{16} status=200$/),
    })
    expect(lines.find((l) => String(l.msg).startsWith('Welcome processing failed'))).toMatchObject({
      level: 40,
      caller: bob.did,
    })
    expect(lines.find((l) => String(l.msg).startsWith('Welcome already consumed for user'))).toMatchObject({
      level: 30,
      msg: `Welcome already consumed for user ${bob.did} in convo ${convo.id} (expected on retry)`,
    })
    // No token, no ciphertext or Welcome bytes, no raw idempotency key.
    const raw = logs.text()
    expect(raw).not.toContain(token)
    expect(raw).not.toContain(token.split('.')[2])
    expect(raw).not.toContain(encodeBase64(ciphertext))
    expect(raw).not.toContain(encodeBase64(welcome))
    expect(raw).not.toContain(key)
  })

  it.each([
    ['health probes', '/xrpc/_health', 'health probe'],
    ['metrics scrapes', '/metrics', 'metrics scrape'],
  ])('log %s at debug, one line each', async (_name, path, msg) => {
    lines.length = 0
    expect((await fetch(`${t.url}${path}`)).status).toBe(200)
    expect(lines).toEqual([])
    t.app.log.level = 'debug'
    try {
      expect((await fetch(`${t.url}${path}`)).status).toBe(200)
    } finally {
      t.app.log.level = 'info'
    }
    expect(lines).toEqual([expect.objectContaining({ level: 20, msg, status: 200, reqId: expect.any(String) })])
  })
})
