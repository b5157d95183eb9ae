import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Secp256k1Keypair, type Keypair } from '@atproto/crypto'
import { createServiceJwt } from '@atproto/xrpc-server'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { NSID, SERVICE_DID, startTestApp, type TestApp } from '../helpers/index.js'

// A PLC directory on loopback: did:plc callers are resolved through PLC_URL.
const DID = 'did:plc:ewvi7nxzyoun6zhxrhs64oiz'
let signingKey: Keypair
let lookups = 0
let plc: Server
let t: TestApp

const didDocument = () => ({
  '@context': ['https://www.w3.org/ns/did/v1'],
  id: DID,
  alsoKnownAs: ['at://alice.test'],
  verificationMethod: [
    {
      id: `${DID}#atproto`,
      type: 'Multikey',
      controller: DID,
      publicKeyMultibase: signingKey.did().slice('did:key:'.length),
    },
  ],
  service: [{ id: '#atproto_pds', type: 'AtprotoPersonalDataServer', serviceEndpoint: 'https://pds.test' }],
})

beforeAll(async () => {
  signingKey = await Secp256k1Keypair.create()
  plc = createServer((req, res) => {
    lookups++
    if (decodeURIComponent(req.url ?? '') === `/${DID}`) {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(didDocument()))
    } else {
      res.writeHead(404).end()
    }
  })
  await new Promise<void>((resolve) => plc.listen(0, '127.0.0.1', resolve))
  const { port } = plc.address() as AddressInfo
  t = await startTestApp({ config: { PLC_URL: `http://127.0.0.1:${port}` } })
})
afterAll(async () => {
  await t?.close()
  await new Promise((resolve) => plc?.close(resolve))
})

const tokenFor = (keypair: Keypair, iss = DID) =>
  createServiceJwt({ iss, aud: SERVICE_DID, lxm: NSID.getConvos, keypair })

describe('did:plc callers', () => {
  it('are verified with the key of their DID document, resolved once and cached', async () => {
    const first = await t.call(null, NSID.getConvos, { token: await tokenFor(signingKey) })
    expect(first.status).toBe(200)
    const resolved = lookups
    expect(resolved).toBeGreaterThanOrEqual(1)
    expect((await t.call(null, NSID.getConvos, { token: await tokenFor(signingKey) })).status).toBe(200)
    expect(lookups).toBe(resolved)
  })

  it('are refused when signed by another key, and a rotated key is picked up', async () => {
    const other = await Secp256k1Keypair.create()
    const forged = await t.call(null, NSID.getConvos, { token: await tokenFor(other) })
    expect(forged.status).toBe(401)
    expect(forged.body.error).toBe('BadJwtSignature')
    // The account rotates to the new key: the cached document is refreshed on the signature failure.
    signingKey = other
    expect((await t.call(null, NSID.getConvos, { token: await tokenFor(other) })).status).toBe(200)
  })

  it('that cannot be resolved get 401, not 500', async () => {
    const res = await t.call(null, NSID.getConvos, {
      token: await tokenFor(signingKey, 'did:plc:aaaaaaaaaaaaaaaaaaaaaaaa'),
    })
    expect(res.status).toBe(401)
    expect(res.body.error).toBe('BadJwtIss')
  })
})
