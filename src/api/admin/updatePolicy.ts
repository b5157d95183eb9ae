import { NSID } from '../../lexicon/types/index.js'
import { findConvoId } from '../../services/membership.js'
import { updatePolicy } from '../../services/policy.js'
import { handler } from '../../xrpc/types.js'

export default handler(NSID.updatePolicy, async ({ input, caller, db, ctx }) => {
  const { convoId: named, ...fields } = input
  const convoId = await findConvoId(db, named)
  return {
    policy: await updatePolicy(db, { convoId, caller, fields, serverMax: ctx.config.MAX_MEMBERS_PER_CONVO }),
  }
})
