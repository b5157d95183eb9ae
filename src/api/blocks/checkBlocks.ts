import { NSID } from '../../lexicon/types/index.js'
import { checkBlocks } from '../../services/blocks.js'
import { handler } from '../../xrpc/types.js'

export default handler(NSID.checkBlocks, async ({ params, db, ctx }) => checkBlocks(db, ctx.blocks, params.dids))
