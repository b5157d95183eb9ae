import { NSID } from '../../lexicon/types/index.js'
import { requireMember } from '../../services/membership.js'
import { handler } from '../../xrpc/types.js'

export default handler(NSID.getEpoch, async ({ params, caller, db }) => {
  const { convo } = await requireMember(db, params.convoId, caller)
  // The conversation as the caller named it (by its id, or by its group id).
  return { convoId: params.convoId, currentEpoch: convo.epoch }
})
