import { NSID } from '../../lexicon/types/index.js'
import { encodeBase64 } from '../../lexicon/wire.js'
import { claimKeyPackages } from '../../services/keyPackages.js'
import { handler } from '../../xrpc/types.js'

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
    })),
    ...(missing.length ? { missing } : {}),
  }
})
