import { NSID } from '../../lexicon/types/index.js'
import { keyPackageStats } from '../../services/keyPackages.js'
import { handler } from '../../xrpc/types.js'

export default handler(NSID.getKeyPackageStats, async ({ params, caller, db }) =>
  keyPackageStats(db, { owner: caller, cipherSuite: params.cipherSuite }),
)
