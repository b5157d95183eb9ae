import { NSID } from '../../lexicon/types/index.js'
import { handler } from '../../xrpc/types.js'

/** This server has no chat request mailbox: no one has sent the caller a request, in any state. */
export default handler(NSID.listChatRequests, async () => ({ requests: [] }))
