import { NSID } from '../../lexicon/types/index.js'
import { encodeBase64 } from '../../lexicon/wire.js'
import { claimKeyPackages } from '../../services/keyPackages.js'
import { handler } from '../../xrpc/types.js'

/** The lexicons bound keyPackageHash to a SHA-256 ref: the SHA-512 suites' refs go without. */
const SHA256_REF_BYTES = 32

export default handler(NSID.getKeyPackages, async ({ params, caller, db, ctx }) => {
  const { keyPackages, missing } = await claimKeyPackages(db, {
    dids: params.dids,
    cipherSuite: params.cipherSuite,
    claimedBy: caller,
  })
  ctx.metrics.lastResortHandouts.inc(keyPackages.filter((kp) => kp.lastResort).length)
  return {
    keyPackages: keyPackages.map((kp) => ({
      did: kp.did,
      keyPackage: encodeBase64(kp.keyPackage),
      cipherSuite: kp.cipherSuite,
      // The client recomputes the KeyPackageRef and skips a package whose hash differs.
      ...(kp.ref.length === SHA256_REF_BYTES ? { keyPackageHash: Buffer.from(kp.ref).toString('hex') } : {}),
    })),
    ...(missing.length ? { missing } : {}),
  }
})
