import { NSID } from '../../lexicon/types/index.js'
import { listReports } from '../../services/reports.js'
import { handler } from '../../xrpc/types.js'

export default handler(NSID.getReports, async ({ params, caller, db }) => ({
  reports: await listReports(db, {
    convoId: params.convoId,
    caller,
    status: params.status,
    limit: params.limit ?? 50,
  }),
}))
