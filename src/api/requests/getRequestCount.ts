import { NSID } from '../../lexicon/types/index.js'
import { handler } from '../../xrpc/types.js'

/** This server has no chat request mailbox: none are pending. */
export default handler(NSID.getRequestCount, async () => ({ pendingCount: 0 }))
