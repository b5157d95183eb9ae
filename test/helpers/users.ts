import { Secp256k1Keypair, P256Keypair, type Keypair } from '@atproto/crypto'
import { createServiceJwt } from '@atproto/xrpc-server'

export const SERVICE_DID = 'did:web:localhost'

/** A caller with a real did:key and real signatures. */
export class TestUser {
  private constructor(
    readonly keypair: Keypair,
    readonly did: string,
  ) {}

  static async create(kind: 'k256' | 'p256' = 'k256'): Promise<TestUser> {
    const keypair =
      kind === 'k256' ? await Secp256k1Keypair.create() : await P256Keypair.create()
    return new TestUser(keypair, keypair.did())
  }

  /** A service-auth token for one method; override claims to build bad ones. */
  token(nsid: string | null, opts: { aud?: string; exp?: number; iat?: number } = {}): Promise<string> {
    return createServiceJwt({
      iss: this.did,
      aud: opts.aud ?? SERVICE_DID,
      lxm: nsid,
      keypair: this.keypair,
      ...(opts.exp !== undefined ? { exp: opts.exp } : {}),
      ...(opts.iat !== undefined ? { iat: opts.iat } : {}),
    })
  }
}
