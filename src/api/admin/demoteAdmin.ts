import { NSID } from '../../lexicon/types/index.js'
import { findConvoId } from '../../services/membership.js'
import { demoteAdmin } from '../../services/roles.js'
import { handler } from '../../xrpc/types.js'

export default handler(NSID.demoteAdmin, async ({ input, caller, db }) => {
  await demoteAdmin(db, {
    convoId: await findConvoId(db, input.convoId),
    caller,
    target: input.targetDid,
  })
  return { ok: true }
})
