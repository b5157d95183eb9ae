import { NSID } from '../../lexicon/types/index.js'
import { findConvoId } from '../../services/membership.js'
import { demoteModerator } from '../../services/roles.js'
import { handler } from '../../xrpc/types.js'
import { announce } from '../announce.js'

export default handler(NSID.demoteModerator, async (req) => {
  const { input, caller, db } = req
  const change = await demoteModerator(db, {
    convoId: await findConvoId(db, input.convoId),
    caller,
    target: input.targetDid,
  })
  announce(req, undefined, [change.event])
  return { ok: true }
})
