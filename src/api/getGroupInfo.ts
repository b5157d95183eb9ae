import type * as GetGroupInfo from '../lexicon/types/blue.catbird.mls.getGroupInfo.js'
import { fetchGroupInfo } from '../services/groupInfo.js'
import { encodeBase64 } from '../services/util.js'
import { xrpcHandler } from '../xrpc/types.js'

// No expiresAt: a GroupInfo is good until the next commit, not for a time.
export default xrpcHandler<GetGroupInfo.Params, undefined, GetGroupInfo.Output>(async ({ params, caller, db }) => {
  const { data, epoch } = await fetchGroupInfo(db, { convoId: params.convoId, caller })
  return { groupInfo: encodeBase64(data), epoch }
})
