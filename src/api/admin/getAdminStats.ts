import { NSID } from '../../lexicon/types/index.js'
import { moderationStats } from '../../services/reports.js'
import { forbidden } from '../../xrpc/errors.js'
import { handler } from '../../xrpc/types.js'

/** Counts of one conversation, for its admins; the server's own are for its operators (npm run admin -- stats). */
export default handler(NSID.getAdminStats, async ({ params, caller, db }) => {
  if (params.convoId === undefined) {
    throw forbidden(
      'NotAdmin',
      "Server-wide figures are for this server's operators (npm run admin -- stats); name a conversation you are an admin of",
    )
  }
  const { stats, groupId } = await moderationStats(db, { convoId: params.convoId, caller, since: params.since })
  return { stats, generatedAt: new Date().toISOString(), convoId: groupId }
})
