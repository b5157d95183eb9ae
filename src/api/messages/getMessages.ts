import { NSID } from '../../lexicon/types/index.js'
import { listMessages } from '../../services/messages.js'
import { handler } from '../../xrpc/types.js'

export default handler(NSID.getMessages, async ({ params, caller, db }) =>
  listMessages(db, {
    convoId: params.convoId,
    did: caller,
    sinceMessage: params.sinceMessage,
    sinceSeq: params.sinceSeq,
    limit: params.limit ?? 50,
  }),
)
