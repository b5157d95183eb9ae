import { getServiceEndpoint, isValidDidDoc } from '@atproto/common-web'
import { IdResolver } from '@atproto/identity'
import { describe, expect, it } from 'vitest'
import { MLS_SERVICE, serviceDidDocument } from '../../src/did-document.js'
import { freePort, startTestApp } from '../helpers/index.js'

describe('the service DID document', () => {
  it('is served for a did:web SERVICE_DID, and an atproto resolver finds this service in it', async () => {
    const port = await freePort()
    const serviceDid = `did:web:localhost%3A${port}`
    const t = await startTestApp({ port, config: { SERVICE_DID: serviceDid } })
    try {
      // As a PDS resolves it (did:web of localhost is fetched over http).
      const document = await new IdResolver({ timeout: 3_000 }).did.resolve(serviceDid, true)
      expect(isValidDidDoc(document)).toBe(true)
      expect(document?.id).toBe(serviceDid)
      expect(document && getServiceEndpoint(document, MLS_SERVICE)).toBe(`https://localhost:${port}`)
    } finally {
      await t.close()
    }
  })

  it('is a host-only did:web document, and nothing for other DIDs', async () => {
    expect(serviceDidDocument('did:web:mls.example.com')).toMatchObject({
      id: 'did:web:mls.example.com',
      service: [{ id: '#atproto_mls', type: 'AtprotoMlsService', serviceEndpoint: 'https://mls.example.com' }],
    })
    expect(serviceDidDocument('did:web:example.com:mls')).toBeUndefined()
    const t = await startTestApp({ config: { SERVICE_DID: 'did:plc:ewvi7nxzyoun6zhxrhs64oiz' } })
    try {
      expect((await fetch(`${t.url}/.well-known/did.json`)).status).toBe(404)
    } finally {
      await t.close()
    }
  })
})
