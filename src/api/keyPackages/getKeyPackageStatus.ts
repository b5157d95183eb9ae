import { NSID } from '../../lexicon/types/index.js'
import { keyPackageStatus } from '../../services/keyPackages.js'
import { handler } from '../../xrpc/types.js'

export default handler(NSID.getKeyPackageStatus, async ({ params, caller, db }) =>
  keyPackageStatus(db, { owner: caller, limit: params.limit ?? 20, cursor: params.cursor }),
)
