import { sql } from 'kysely'
import type { ResponseSql } from '../../idempotency/statement.js'
import { NSID } from '../../lexicon/types/index.js'
import { readKeyPackage, type KeyPackageFacts } from '../../mls/index.js'
import { publishKeyPackage } from '../../services/keyPackages.js'
import { invalidRequest } from '../../xrpc/errors.js'
import { handler } from '../../xrpc/types.js'
import { decodeBinaryField, mlsInputError, requireCipherSuite } from '../input.js'

const DAY_MS = 24 * 3600 * 1000
/** Client clocks run a little fast; don't refuse an expiry for that. */
const CLOCK_SKEW_MS = 5 * 60 * 1000
const MAX_KEY_PACKAGE_BYTES = 65536

const invalidKeyPackage = (why: string) => invalidRequest('InvalidKeyPackage', `keyPackage: ${why}`)

/** The checks RFC 9420 §10.1 asks of a key package, plus ours: the caller's own, and not kept too long. */
function checkKeyPackage(
  kp: KeyPackageFacts,
  args: { owner: string; cipherSuite: string; now: number; maxLifetimeMs: number },
): void {
  if (kp.cipherSuite !== args.cipherSuite) {
    throw invalidKeyPackage(`its cipher suite is ${kp.cipherSuite}, not the declared ${args.cipherSuite}`)
  }
  if (kp.identity !== args.owner) {
    throw invalidKeyPackage('its credential must be a basic credential whose identity is your DID')
  }
  if (!kp.signatureValid) throw invalidKeyPackage('its signature does not verify')
  if (kp.notBefore * 1000 > args.now + CLOCK_SKEW_MS) throw invalidKeyPackage('its lifetime has not begun')
  if (kp.notAfter * 1000 <= args.now) throw invalidKeyPackage('its lifetime has ended')
  if (kp.notAfter * 1000 > args.now + args.maxLifetimeMs + CLOCK_SKEW_MS) {
    throw invalidKeyPackage(`its lifetime ends more than ${args.maxLifetimeMs / DAY_MS} days from now`)
  }
}

/** The same answer as the handler's, built in SQL for the record a keyed publish stores with the package. */
const outputSql: ResponseSql = {
  name: NSID.publishKeyPackage,
  json: (row) => sql`json_build_object('available', ${row}.available)`,
}

export default handler(
  NSID.publishKeyPackage,
  // One statement stores the package and the record; key packages, and so the record, live with their owner.
  { keyedWrites: { recordedIn: 'statement', shardKey: (_input, caller) => caller } },
  async ({ input, caller, db, ctx, keyed }) => {
    requireCipherSuite(input.cipherSuite)
    const data = decodeBinaryField(
      input.keyPackage,
      'keyPackage',
      MAX_KEY_PACKAGE_BYTES,
      'InvalidKeyPackage',
    ) as Uint8Array
    const maxLifetimeMs = ctx.config.KEY_PACKAGE_MAX_LIFETIME_DAYS * DAY_MS
    const now = Date.now()
    const expires = input.expires ? new Date(input.expires) : undefined
    if (expires && expires.getTime() <= now) {
      throw invalidRequest(undefined, 'expires is in the past')
    }
    if (expires && expires.getTime() > now + maxLifetimeMs + CLOCK_SKEW_MS) {
      throw invalidRequest(
        'ExpirationTooFar',
        `expires may be at most ${ctx.config.KEY_PACKAGE_MAX_LIFETIME_DAYS} days from now`,
      )
    }
    const kp = await readKeyPackage(data).catch((err: unknown) => {
      throw mlsInputError(err, 'InvalidKeyPackage', 'keyPackage')
    })
    checkKeyPackage(kp, { owner: caller, cipherSuite: input.cipherSuite, now, maxLifetimeMs })
    const notAfter = new Date(kp.notAfter * 1000)
    const available = await publishKeyPackage(
      db,
      {
        owner: caller,
        cipherSuite: input.cipherSuite,
        data,
        ref: kp.ref,
        // Never handed out after the package's own lifetime.
        expiresAt: expires && expires < notAfter ? expires : notAfter,
        maxPerUser: ctx.config.MAX_KEY_PACKAGES_PER_USER,
        // The package's own extension says so, or its owner does (for MLS libraries that cannot write it).
        lastResort: kp.lastResort || input.lastResort === true,
      },
      keyed && { keyed, response: outputSql },
    )
    return { available }
  },
)
