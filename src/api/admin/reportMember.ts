import { NSID } from '../../lexicon/types/index.js'
import { reportMember } from '../../services/reports.js'
import { handler } from '../../xrpc/types.js'

export default handler(NSID.reportMember, async ({ input, caller, db }) =>
  reportMember(db, {
    convoId: input.convoId,
    caller,
    reported: input.reportedDid,
    category: input.category,
    content: input.encryptedContent,
    messageIds: input.messageIds ?? [],
  }),
)
