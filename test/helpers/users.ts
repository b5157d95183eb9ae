import { Secp256k1Keypair, P256Keypair, type Keypair } from '@atproto/crypto'
import { createServiceJwt } from '@atproto/xrpc-server'

export const SERVICE_DID = 'did:web:localhost'

const base64url = (json: unknown) => Buffer.from(JSON.stringify(json)).toString('base64url')

/** A caller with a real did:key and real signatures. */
export class TestUser {
  private constructor(
    readonly keypair: Keypair,
    readonly did: string,
  ) {}

  static async create(kind: 'k256' | 'p256' = 'k256'): Promise<TestUser> {
    const keypair = kind === 'k256' ? await Secp256k1Keypair.create() : await P256Keypair.create()
    return new TestUser(keypair, keypair.did())
  }

  /**
   * A service-auth token for one method; override claims to build bad ones
   * (`iat: null` leaves the claim out, which createServiceJwt cannot).
   */
  async token(nsid: string | null, opts: { aud?: string; exp?: number; iat?: number | null } = {}): Promise<string> {
    const claims = { iss: this.did, aud: opts.aud ?? SERVICE_DID, lxm: nsid, keypair: this.keypair }
    if (opts.iat !== null) {
      return createServiceJwt({
        ...claims,
        ...(opts.exp !== undefined ? { exp: opts.exp } : {}),
        ...(opts.iat !== undefined ? { iat: opts.iat } : {}),
      })
    }
    const payload = {
      iss: claims.iss,
      aud: claims.aud,
      lxm: nsid ?? undefined,
      exp: opts.exp ?? Math.floor(Date.now() / 1000) + 60,
    }
    const signed = `${base64url({ typ: 'JWT', alg: this.keypair.jwtAlg })}.${base64url(payload)}`
    const signature = await this.keypair.sign(Buffer.from(signed))
    return `${signed}.${Buffer.from(signature).toString('base64url')}`
  }
}
