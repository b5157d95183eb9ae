import type { FastifyInstance } from 'fastify'

/** The service entry Catbird clients name when their PDS proxies to us (`atproto-proxy: <did>#atproto_mls`). */
export const MLS_SERVICE = { id: '#atproto_mls', type: 'AtprotoMlsService' } as const

/**
 * The DID document of a `did:web` naming a host (`did:web:mls.example.com`,
 * or `did:web:localhost%3A8443` with a port): what a PDS fetches from
 * https://<host>/.well-known/did.json to find where to proxy. Undefined for
 * other DIDs (did:plc, or did:web with a path), whose documents live elsewhere.
 */
export function serviceDidDocument(serviceDid: string): object | undefined {
  const host = /^did:web:([^:/]+)$/.exec(serviceDid)?.[1]
  if (!host) return undefined
  return {
    '@context': ['https://www.w3.org/ns/did/v1'],
    id: serviceDid,
    service: [{ ...MLS_SERVICE, serviceEndpoint: `https://${decodeURIComponent(host)}` }],
  }
}

/** Serves the service's own DID document, so a did:web service needs no other web server. */
export async function didDocumentRoute(app: FastifyInstance, opts: { serviceDid: string }): Promise<void> {
  const document = serviceDidDocument(opts.serviceDid)
  if (document) app.get('/.well-known/did.json', async () => document)
}
