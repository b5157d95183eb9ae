import { NSID } from '../../lexicon/types/index.js'
import { keyPackageStats } from '../../services/keyPackages.js'
import { invalidRequest } from '../../xrpc/errors.js'
import { handler } from '../../xrpc/types.js'

export default handler(NSID.getKeyPackageStats, async ({ params, caller, db, ctx }) => {
  // Others' stocks of key packages are theirs to know.
  if (params.did !== undefined && params.did !== caller) {
    throw invalidRequest('InvalidDid', "did must be the caller's DID: only one's own key packages are counted")
  }
  return keyPackageStats(db, {
    owner: caller,
    cipherSuite: params.cipherSuite,
    threshold: ctx.config.KEY_PACKAGE_REPLENISH_THRESHOLD,
  })
})
