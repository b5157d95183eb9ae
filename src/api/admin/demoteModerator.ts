import { NSID } from '../../lexicon/types/index.js'
import { findConvoId } from '../../services/membership.js'
import { demoteModerator } from '../../services/roles.js'
import { handler } from '../../xrpc/types.js'

export default handler(NSID.demoteModerator, async ({ input, caller, db }) => {
  await demoteModerator(db, {
    convoId: await findConvoId(db, input.convoId),
    caller,
    target: input.targetDid,
  })
  return { ok: true }
})
