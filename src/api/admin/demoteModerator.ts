import { NSID } from '../../lexicon/types/index.js'
import { demoteModerator } from '../../services/roles.js'
import { handler } from '../../xrpc/types.js'

export default handler(NSID.demoteModerator, async ({ input, caller, db }) => {
  await demoteModerator(db, { convoId: input.convoId, caller, target: input.targetDid })
  return { ok: true }
})
