import { P256Keypair } from '@atproto/crypto'
import { createServiceJwt } from '@atproto/xrpc-server'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ConfigError, loadConfig } from '../../src/config.js'
import { handlers, notImplemented } from '../../src/api/index.js'
import { NSID, SERVICE_DID, startTestApp, type TestApp, TestUser } from '../helpers/index.js'
import { xrpcMethods } from '../../src/xrpc/lexicons.js'
import { version } from '../../src/version.js'

let t: TestApp
let alice: TestUser

beforeAll(async () => {
  t = await startTestApp({ config: { BODY_LIMIT_BYTES: '4096' } })
  alice = await TestUser.create()
})
afterAll(async () => {
  await t?.close()
})

describe('routing', () => {
  it('serves /xrpc/_health with the version when the database answers', async () => {
    const res = await fetch(`${t.url}/xrpc/_health`)
    expect(res.status).toBe(200)
    expect(await res.json()).toEqual({ version: expect.stringMatching(/^\d+\.\d+\.\d+/) })
  })

  it('routes every lexicon method at /xrpc/<nsid> with its HTTP method, behind auth', async () => {
    const methods = xrpcMethods(t.ctx.lexicons)
    expect(methods.length).toBeGreaterThanOrEqual(14)
    for (const { nsid, def } of methods) {
      const method = def.type === 'query' ? 'GET' : 'POST'
      const res = await fetch(`${t.url}/xrpc/${nsid}`, { method })
      expect(res.status, nsid).toBe(401)
      expect(await res.json(), nsid).toMatchObject({ error: 'AuthMissing' })
    }
  })

  it('answers the wrong HTTP method with 405 and Allow', async () => {
    const asGet = await fetch(`${t.url}/xrpc/${NSID.sendMessage}`)
    expect(asGet.status).toBe(405)
    expect(asGet.headers.get('allow')).toBe('POST')
    expect(await asGet.json()).toMatchObject({ error: 'InvalidRequest', message: expect.stringContaining('POST') })
    const asPost = await t.callRaw(alice, NSID.getConvos, { method: 'POST', input: {} })
    expect(asPost.status).toBe(405)
  })

  it('answers unknown XRPC methods with 501 MethodNotImplemented, other paths with 404', async () => {
    for (const method of ['GET', 'POST']) {
      const res = await fetch(`${t.url}/xrpc/blue.catbird.mls.noSuchMethod?x=1`, { method })
      expect(res.status, method).toBe(501)
      expect(await res.json()).toEqual({
        error: 'MethodNotImplemented',
        message: 'blue.catbird.mls.noSuchMethod is not implemented by this server',
      })
    }
    const elsewhere = await fetch(`${t.url}/elsewhere`)
    expect(elsewhere.status).toBe(404)
    expect(await elsewhere.json()).toMatchObject({ error: 'NotFound', message: expect.any(String) })
  })

  it('answers GET / with what the server is and where its documentation is', async () => {
    const res = await fetch(`${t.url}/`)
    expect(res.status).toBe(200)
    expect(await res.json()).toEqual({
      name: 'catbird-mls-ds',
      version,
      docs: expect.stringMatching(/^README\.md .*\/xrpc\/blue\.catbird\.mls\.\*.*\/xrpc\/_health$/),
    })
  })

  it('answers 501 MethodNotImplemented for a lexicon method without a handler', async () => {
    const { [NSID.getConvos]: _omitted, ...rest } = handlers
    const partial = await startTestApp({ testDb: t.testDb, handlers: rest })
    try {
      const res = await partial.call(alice, NSID.getConvos)
      expect(res.status).toBe(501)
      expect(res.body).toMatchObject({ error: 'MethodNotImplemented' })
    } finally {
      await partial.close()
    }
  })

  it('answers 501 MethodNotImplemented for the methods not implemented yet, whatever they are sent, after auth', async () => {
    for (const nsid of notImplemented) {
      // Nothing is validated: an unknown parameter, and for a procedure a body no lexicon allows.
      const procedure = t.ctx.lexicons.getDef(nsid)?.type === 'procedure'
      const res = await t.callRaw(alice, nsid, { params: { no: 'such parameter' }, input: procedure ? [] : undefined })
      expect(res.status, nsid).toBe(501)
      expect(res.body, nsid).toEqual({ error: 'MethodNotImplemented', message: `${nsid} is not implemented` })
    }
    const anonymous = await t.callRaw(null, notImplemented[0])
    expect(anonymous.status).toBe(401)
    // A subscription is a WebSocket: a plain GET is told to upgrade.
    const subscription = await t.callRaw(alice, 'blue.catbird.mls.subscribeConvoEvents', { method: 'GET' })
    expect(subscription.status).toBe(426)
    expect(subscription.body).toMatchObject({ error: 'UpgradeRequired' })
  })

  it('refuses an output that breaks the lexicon (output validation) with a 500', async () => {
    const broken = await startTestApp({
      testDb: t.testDb,
      handlers: { ...handlers, [NSID.getConvos]: async () => ({ conversations: 'not an array' }) },
    })
    try {
      const res = await broken.call(alice, NSID.getConvos)
      expect(res.status).toBe(500)
      expect(res.body).toEqual({ error: 'InternalServerError', message: 'Internal Server Error' })
    } finally {
      await broken.close()
    }
  })
})

describe('params and input validation', () => {
  it('coerces integer params and refuses malformed ones, naming the param', async () => {
    const ok = await t.call(alice, NSID.getConvos, { params: { limit: 5 } })
    expect(ok.status).toBe(200)
    for (const limit of ['abc', '5x', '', '1.5']) {
      const res = await t.callRaw(alice, NSID.getConvos, { params: { limit } })
      expect(res.status, limit).toBe(400)
      expect(res.body.error).toBe('InvalidRequest')
      expect(String(res.body.message)).toContain('limit')
    }
    const tooBig = await t.call(alice, NSID.getConvos, { params: { limit: 101 } })
    expect(tooBig.status).toBe(400)
    expect(String(tooBig.body.message)).toContain('limit')
  })

  it('refuses a scalar param given twice and a missing required param', async () => {
    const twice = await t.callRaw(alice, NSID.getMessages, { params: { convoId: ['a', 'b'] } })
    expect(twice.status).toBe(400)
    expect(String(twice.body.message)).toContain('convoId')
    const missing = await t.callRaw(alice, NSID.getMessages)
    expect(missing.status).toBe(400)
    expect(String(missing.body.message)).toContain('convoId')
  })

  it('decodes repeated keys as array params', async () => {
    const bob = await TestUser.create()
    const res = await t.call(alice, NSID.getKeyPackages, {
      params: { dids: [bob.did, alice.did] },
    })
    expect(res.status).toBe(200)
    expect(res.body).toEqual({ keyPackages: [], missing: [bob.did, alice.did] })
  })

  it('refuses boolean params that are not "true" or "false"', async () => {
    const { decodeQueryParams } = await import('../../src/xrpc/params.js')
    const def = { type: 'params' as const, properties: { flag: { type: 'boolean' as const } } }
    expect(decodeQueryParams(def, new URLSearchParams('flag=true'))).toEqual({ flag: true })
    expect(decodeQueryParams(def, new URLSearchParams('flag=false'))).toEqual({ flag: false })
    expect(() => decodeQueryParams(def, new URLSearchParams('flag=yes'))).toThrow(/flag/)
  })

  it('refuses an invalid body with 400 naming the field', async () => {
    const noEpoch = await t.callRaw(alice, NSID.sendMessage, {
      input: { convoId: 'c', senderDid: alice.did, ciphertext: { $bytes: 'AAAA' } },
    })
    expect(noEpoch.status).toBe(400)
    expect(noEpoch.body).toMatchObject({ error: 'InvalidRequest', message: expect.stringContaining('epoch') })
    const badBytes = await t.callRaw(alice, NSID.sendMessage, {
      input: { convoId: 'c', senderDid: alice.did, ciphertext: 'plain', epoch: 0 },
    })
    expect(badBytes.status).toBe(400)
    expect(String(badBytes.body.message)).toContain('ciphertext')
  })

  it('refuses bodies that are not JSON, or not JSON at all', async () => {
    const notJson = await t.callRaw(alice, NSID.sendMessage, { input: '{"convoId": ' })
    expect(notJson.status).toBe(400)
    expect(notJson.body.error).toBe('InvalidRequest')
    const wrongType = await t.callRaw(alice, NSID.sendMessage, {
      input: 'hello',
      headers: { 'content-type': 'application/octet-stream' },
    })
    expect(wrongType.status).toBe(415)
    // Valid JSON under another content type is refused the same way.
    const asText = await t.call(alice, NSID.sendMessage, {
      input: { convoId: 'c', senderDid: alice.did, epoch: 0, ciphertext: { $bytes: 'AAAA' } },
      headers: { 'content-type': 'text/plain' },
    })
    expect(asText.status).toBe(415)
    expect(asText.body).toMatchObject({ message: expect.stringContaining('application/json') })
    const none = await t.callRaw(alice, NSID.sendMessage)
    expect(none.status).toBe(400)
    const proto = await t.callRaw(alice, NSID.sendMessage, { input: '{"__proto__": {"x": 1}}' })
    expect(proto.status).toBe(400)
  })

  it('answers 413 PayloadTooLarge past the body limit', async () => {
    const res = await t.call(alice, NSID.sendMessage, {
      input: { convoId: 'c', senderDid: alice.did, epoch: 0, ciphertext: { $bytes: 'A'.repeat(8000) } },
    })
    expect(res.status).toBe(413)
    expect(res.body).toMatchObject({ error: 'PayloadTooLarge' })
  })
})

describe('service auth', () => {
  it('accepts a token for this service and method (k256 and p256 keys)', async () => {
    expect((await t.call(alice, NSID.getConvos)).status).toBe(200)
    const p256 = await TestUser.create('p256')
    expect((await t.call(p256, NSID.getConvos)).status).toBe(200)
  })

  it.each([
    ['missing header', async () => null, 'AuthMissing'],
    ['another method', () => alice.token(NSID.sendMessage), 'BadJwtLexiconMethod'],
    ['no method', () => alice.token(null), 'BadJwtLexiconMethod'],
    ['expired', () => alice.token(NSID.getConvos, { iat: 1_000, exp: 1_060 }), 'JwtExpired'],
    [
      'not valid yet',
      () =>
        alice.token(NSID.getConvos, {
          iat: Math.floor(Date.now() / 1000) + 3600,
          exp: Math.floor(Date.now() / 1000) + 7200,
        }),
      'BadJwt',
    ],
    ['garbage', async () => 'not.a.jwt', 'BadJwt'],
    ['two parts', async () => 'abc.def', 'BadJwt'],
  ])('refuses a request with %s (401 %s)', async (_name, makeToken, error) => {
    const res = await t.call(alice, NSID.getConvos, { token: await makeToken() })
    expect(res.status).toBe(401)
    expect(res.body).toMatchObject({ error, message: expect.any(String) })
  })

  it('refuses a token for another audience naming the one it must have (401 BadJwtAudience)', async () => {
    const token = await alice.token(NSID.getConvos, { aud: 'did:web:elsewhere.example' })
    const res = await t.call(alice, NSID.getConvos, { token })
    expect(res.status).toBe(401)
    expect(res.body).toEqual({
      error: 'BadJwtAudience',
      message: `bad jwt audience ("aud"). must match this service's DID: ${SERVICE_DID}`,
    })
  })

  it('refuses a token that lives longer than MAX_TOKEN_LIFETIME_SECONDS from now, naming the limit (401 BadJwt)', async () => {
    const now = Math.floor(Date.now() / 1000)
    const tenYears = await t.call(alice, NSID.getConvos, {
      token: await alice.token(NSID.getConvos, { exp: now + 10 * 365 * 86400 }),
    })
    expect(tenYears.status).toBe(401)
    expect(tenYears.body).toMatchObject({ error: 'BadJwt', message: expect.stringContaining('3600 seconds') })
    // Within the limit (and the clock skew allowed on top of it) is fine.
    expect(
      (await t.call(alice, NSID.getConvos, { token: await alice.token(NSID.getConvos, { exp: now + 3600 }) })).status,
    ).toBe(200)
  })

  it('refuses a token without iat (401 BadJwt)', async () => {
    const res = await t.call(alice, NSID.getConvos, { token: await alice.token(NSID.getConvos, { iat: null }) })
    expect(res.status).toBe(401)
    expect(res.body).toMatchObject({ error: 'BadJwt', message: expect.stringContaining('iat') })
  })

  it('refuses a token signed by a key that is not the issuer DID', async () => {
    const mallory = await P256Keypair.create()
    const forged = await createServiceJwt({ iss: alice.did, aud: SERVICE_DID, lxm: NSID.getConvos, keypair: mallory })
    const res = await t.call(null, NSID.getConvos, { token: forged })
    expect(res.status).toBe(401)
    expect(res.body.error).toBe('BadJwtSignature')
  })

  it('refuses alg "none" and a non-Bearer scheme', async () => {
    const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url')
    const exp = Math.floor(Date.now() / 1000) + 60
    const unsigned = `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ iss: alice.did, aud: SERVICE_DID, lxm: NSID.getConvos, exp })}.`
    const res = await t.call(null, NSID.getConvos, { token: unsigned })
    expect(res.status).toBe(401)
    const basic = await t.call(null, NSID.getConvos, { headers: { authorization: 'Basic abc' } })
    expect(basic.status).toBe(401)
  })
})

describe('configuration', () => {
  it('applies defaults', () => {
    const config = loadConfig({})
    expect(config).toMatchObject({
      PORT: 3000,
      SERVICE_DID: 'did:web:localhost',
      IDEMPOTENCY_TTL_SECONDS: 86400,
      WELCOME_GRACE_SECONDS: 300,
    })
  })

  it('stops start-up with a message naming every bad variable', () => {
    const attempt = () =>
      loadConfig({ PORT: 'eighty', SERVICE_DID: 'localhost', DATABASE_URL: 'mysql://x', LOG_LEVEL: 'loud' })
    expect(attempt).toThrow(ConfigError)
    for (const name of ['PORT', 'SERVICE_DID', 'DATABASE_URL', 'LOG_LEVEL']) {
      expect(attempt).toThrow(name)
    }
  })

  it('refuses a database query timeout that PostgreSQL statement timeouts cannot come before', () => {
    expect(() => loadConfig({ DATABASE_STATEMENT_TIMEOUT_MS: '10000' })).toThrow(
      'DATABASE_QUERY_TIMEOUT_MS: must be above DATABASE_STATEMENT_TIMEOUT_MS (10000)',
    )
    expect(loadConfig({ DATABASE_STATEMENT_TIMEOUT_MS: '0' }).DATABASE_STATEMENT_TIMEOUT_MS).toBe(0)
  })
})
