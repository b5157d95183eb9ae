import { NSID } from '../../lexicon/types/index.js'
import { findConvoId } from '../../services/membership.js'
import { promoteModerator } from '../../services/roles.js'
import { iso } from '../../services/timestamps.js'
import { handler } from '../../xrpc/types.js'
import { announce } from '../announce.js'

export default handler(NSID.promoteModerator, async (req) => {
  const { input, caller, db } = req
  const change = await promoteModerator(db, {
    convoId: await findConvoId(db, input.convoId),
    caller,
    target: input.targetDid,
  })
  announce(req, undefined, [change.event])
  return { ok: true, promotedAt: iso(change.promotedAt) }
})
