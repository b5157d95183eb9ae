import { NSID } from '../../lexicon/types/index.js'
import { listPendingAdditions } from '../../services/pendingAdditions.js'
import { handler } from '../../xrpc/types.js'

export default handler(NSID.getPendingDeviceAdditions, async ({ params, caller, db }) => ({
  pendingAdditions: await listPendingAdditions(db, { caller, convoIds: params.convoIds, limit: params.limit ?? 50 }),
}))
