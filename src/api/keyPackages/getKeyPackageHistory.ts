import { NSID } from '../../lexicon/types/index.js'
import { keyPackageHistory } from '../../services/keyPackages.js'
import { handler } from '../../xrpc/types.js'

export default handler(NSID.getKeyPackageHistory, async ({ params, caller, db }) =>
  keyPackageHistory(db, { owner: caller, limit: params.limit ?? 20, cursor: params.cursor }),
)
