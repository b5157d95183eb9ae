import { NSID } from '../../lexicon/types/index.js'
import { encodeBase64 } from '../../lexicon/wire.js'
import { fetchGroupInfo } from '../../services/groupInfo.js'
import { handler } from '../../xrpc/types.js'

// No expiresAt: a GroupInfo is good until the next commit, not for a time.
export default handler(NSID.getGroupInfo, async ({ params, caller, db }) => {
  const { data, epoch } = await fetchGroupInfo(db, { convoId: params.convoId, caller })
  return { groupInfo: encodeBase64(data), epoch }
})
