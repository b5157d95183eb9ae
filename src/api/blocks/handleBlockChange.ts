import { NSID } from '../../lexicon/types/index.js'
import { reportBlockChange } from '../../services/blocks.js'
import { handler } from '../../xrpc/types.js'

export default handler(NSID.handleBlockChange, async ({ input, caller, db, ctx }) => ({
  affectedConvos: await reportBlockChange(db, ctx.blocks, {
    caller,
    blocker: input.blockerDid,
    blocked: input.blockedDid,
    action: input.action,
    uri: input.blockUri,
  }),
}))
