import { NSID } from '../../lexicon/types/index.js'
import { getPolicy } from '../../services/policy.js'
import { handler } from '../../xrpc/types.js'

export default handler(NSID.getPolicy, async ({ params, caller, db, ctx }) => ({
  policy: await getPolicy(db, { convoId: params.convoId, caller, serverMax: ctx.config.MAX_MEMBERS_PER_CONVO }),
}))
