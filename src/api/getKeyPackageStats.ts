import type * as GetKeyPackageStats from '../lexicon/types/blue.catbird.mls.getKeyPackageStats.js'
import { keyPackageStats } from '../services/keyPackages.js'
import { xrpcHandler } from '../xrpc/types.js'

export default xrpcHandler<GetKeyPackageStats.Params, undefined, GetKeyPackageStats.Output>(
  async ({ params, caller, db }) =>
    keyPackageStats(db, { owner: caller, cipherSuite: params.cipherSuite }),
)
