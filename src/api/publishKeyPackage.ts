import type * as PublishKeyPackage from '../lexicon/types/blue.catbird.mls.publishKeyPackage.js'
import { publishKeyPackage } from '../services/keyPackages.js'
import { invalidRequest } from '../xrpc/errors.js'
import { xrpcHandler } from '../xrpc/types.js'
import { decodeBinaryField, requireCipherSuite } from './input.js'

const DAY_MS = 24 * 3600 * 1000
/** Client clocks run a little fast; don't refuse an expiry for that. */
const CLOCK_SKEW_MS = 5 * 60 * 1000
const MAX_KEY_PACKAGE_BYTES = 65536

export default xrpcHandler<PublishKeyPackage.Params, PublishKeyPackage.Input, PublishKeyPackage.Output>(
  async ({ input, caller, db, ctx }) => {
    requireCipherSuite(input.cipherSuite)
    const data = decodeBinaryField(input.keyPackage, 'keyPackage', MAX_KEY_PACKAGE_BYTES, 'InvalidKeyPackage')
    const maxLifetimeMs = ctx.config.KEY_PACKAGE_MAX_LIFETIME_DAYS * DAY_MS
    const now = Date.now()
    const expiresAt = input.expires ? new Date(input.expires) : new Date(now + maxLifetimeMs)
    if (expiresAt.getTime() <= now) {
      throw invalidRequest(undefined, 'expires is in the past')
    }
    if (expiresAt.getTime() > now + maxLifetimeMs + CLOCK_SKEW_MS) {
      throw invalidRequest(
        'ExpirationTooFar',
        `expires may be at most ${ctx.config.KEY_PACKAGE_MAX_LIFETIME_DAYS} days from now`,
      )
    }
    const available = await publishKeyPackage(db, {
      owner: caller,
      cipherSuite: input.cipherSuite,
      data: data as Uint8Array,
      expiresAt,
      maxPerUser: ctx.config.MAX_KEY_PACKAGES_PER_USER,
    })
    return { available }
  },
)
