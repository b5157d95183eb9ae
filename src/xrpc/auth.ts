import { IdResolver, MemoryCache } from '@atproto/identity'
import { AuthRequiredError, verifyJwt, XRPCError } from '@atproto/xrpc-server'
import type { AuthVerifier } from '../context.js'

export interface AuthVerifierOptions {
  serviceDid: string
  plcUrl: string
  didCacheTtlMs: number
  /** Latest accepted `exp`, in seconds from now (plus the clock skew). */
  maxLifetimeSeconds: number
  /** Refuse tokens without `iat`. */
  requireIat: boolean
  /** Allowed clock difference for `iat`/`nbf` in the future, and for `exp`, in seconds. */
  clockSkewSeconds?: number
  /** Tokens remembered as verified (clients reuse a token until it expires). */
  cacheSize?: number
}

interface VerifiedToken {
  iss: string
  aud: string
  exp: number
  lxm?: string
}

/**
 * ATProto service auth: `Authorization: Bearer <jwt>` signed by the caller's
 * DID key, for this service (`aud`) and this method (`lxm`), with an `iat`
 * and an `exp` no further off than the configured lifetime. Returns the
 * caller's DID. `did:key` callers are verified from the DID itself; `did:plc`
 * and `did:web` through their DID documents (cached).
 */
export function createAuthVerifier(opts: AuthVerifierOptions): AuthVerifier {
  const skew = opts.clockSkewSeconds ?? 60
  const cacheSize = opts.cacheSize ?? 10_000
  const idResolver = new IdResolver({
    plcUrl: opts.plcUrl,
    timeout: 3_000,
    didCache: new MemoryCache(opts.didCacheTtlMs, opts.didCacheTtlMs * 24),
  })
  const getSigningKey = async (iss: string, forceRefresh: boolean): Promise<string> => {
    if (iss.startsWith('did:key:')) return iss
    try {
      return await idResolver.did.resolveAtprotoKey(iss, forceRefresh)
    } catch (err) {
      throw new AuthRequiredError(`could not resolve signing key of ${iss}`, 'BadJwtIss', {
        cause: err,
      })
    }
  }
  // Signature checks cost far more than the rest of a request; a verified
  // token is remembered (by its full text) until it expires.
  const verified = new Map<string, VerifiedToken>()

  const verify = async (token: string, nsid: string): Promise<VerifiedToken> => {
    const now = Date.now() / 1000
    const cached = verified.get(token)
    if (cached && cached.exp > now) {
      if (cached.lxm !== nsid) {
        throw new AuthRequiredError(`bad jwt lexicon method ("lxm"). must match: ${nsid}`, 'BadJwtLexiconMethod')
      }
      return cached
    }
    let payload: VerifiedToken & { iat?: unknown; nbf?: unknown }
    try {
      payload = await verifyJwt(token, opts.serviceDid, nsid, getSigningKey)
    } catch (err) {
      if (err instanceof XRPCError && err.customErrorName === 'BadJwtAudience') {
        // atproto's message names neither audience; a caller with the wrong one
        // (often SERVICE_DID set differently where the token was made) needs ours.
        throw new AuthRequiredError(
          `bad jwt audience ("aud"). must match this service's DID: ${opts.serviceDid}`,
          'BadJwtAudience',
          { cause: err },
        )
      }
      if (err instanceof XRPCError) throw err
      // Undecodable base64/JSON in the token.
      throw new AuthRequiredError('poorly formatted jwt', 'BadJwt', { cause: err })
    }
    for (const claim of ['iat', 'nbf'] as const) {
      const value = payload[claim]
      if (value !== undefined && (typeof value !== 'number' || value > now + skew)) {
        throw new AuthRequiredError(`jwt is not valid yet (${claim})`, 'BadJwt')
      }
    }
    if (opts.requireIat && payload.iat === undefined) {
      throw new AuthRequiredError('jwt has no issued-at time (iat)', 'BadJwt')
    }
    // atproto sets no upper bound; a leaked long-lived token would be a
    // standing key to every conversation of its issuer.
    if (payload.exp > now + opts.maxLifetimeSeconds + skew) {
      throw new AuthRequiredError(
        `jwt expires too far in the future: tokens may live at most ${opts.maxLifetimeSeconds} seconds (exp)`,
        'BadJwt',
      )
    }
    if (payload.iss.includes('#')) {
      throw new AuthRequiredError('jwt iss must be a user DID, not a service', 'BadJwtIss')
    }
    if (verified.size >= cacheSize) {
      // Map keeps insertion order: drop the oldest entry.
      verified.delete(verified.keys().next().value as string)
    }
    verified.set(token, payload)
    return payload
  }

  return async (authorization, nsid) => {
    if (!authorization) {
      throw new AuthRequiredError('Authorization header is required', 'AuthMissing')
    }
    const [scheme, token, extra] = authorization.split(' ')
    if (scheme?.toLowerCase() !== 'bearer' || !token || extra !== undefined) {
      throw new AuthRequiredError('Authorization must be "Bearer <service jwt>"', 'AuthMissing')
    }
    return (await verify(token, nsid)).iss
  }
}
