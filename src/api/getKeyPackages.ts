import type * as GetKeyPackages from '../lexicon/types/blue.catbird.mls.getKeyPackages.js'
import { claimKeyPackages } from '../services/keyPackages.js'
import { encodeBase64 } from '../services/util.js'
import { xrpcHandler } from '../xrpc/types.js'

export default xrpcHandler<GetKeyPackages.Params, undefined, GetKeyPackages.Output>(
  async ({ params, caller, db, ctx }) => {
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
  },
)
