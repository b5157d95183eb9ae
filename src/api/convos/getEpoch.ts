import { NSID } from '../../lexicon/types/index.js'
import { requireMember } from '../../services/membership.js'
import { handler } from '../../xrpc/types.js'

export default handler(NSID.getEpoch, async ({ params, caller, db }) => {
  const { convo } = await requireMember(db, params.convoId, caller)
  return { convoId: convo.id, currentEpoch: convo.epoch }
})
