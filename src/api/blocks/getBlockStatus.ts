import { NSID } from '../../lexicon/types/index.js'
import { blockStatus } from '../../services/blocks.js'
import { handler } from '../../xrpc/types.js'

export default handler(NSID.getBlockStatus, async ({ params, caller, db, ctx }) => {
  const { groupId, blocks, checkedAt, memberCount } = await blockStatus(db, ctx.blocks, {
    convoId: params.convoId,
    caller,
  })
  return { convoId: groupId, hasConflicts: blocks.length > 0, blocks, checkedAt, memberCount }
})
