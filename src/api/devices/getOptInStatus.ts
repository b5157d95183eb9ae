import { NSID } from '../../lexicon/types/index.js'
import { optInStatuses } from '../../services/optOuts.js'
import { handler } from '../../xrpc/types.js'

export default handler(NSID.getOptInStatus, async ({ params, db }) => ({
  statuses: await optInStatuses(db, params.dids),
}))
