import type * as GetEpoch from '../lexicon/types/blue.catbird.mls.getEpoch.js'
import { requireMember } from '../services/convos.js'
import { xrpcHandler } from '../xrpc/types.js'

export default xrpcHandler<GetEpoch.Params, undefined, GetEpoch.Output>(
  async ({ params, caller, db }) => {
    const { convo } = await requireMember(db, params.convoId, caller)
    return { convoId: convo.id, currentEpoch: convo.epoch }
  },
)
