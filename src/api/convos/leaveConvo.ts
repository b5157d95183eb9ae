import { NSID } from '../../lexicon/types/index.js'
import { removeMember } from '../../services/members.js'
import { handler } from '../../xrpc/types.js'
import { announce } from '../announce.js'
import { readCommit, readGroupInfoField, withGroupInfo } from '../input.js'

export default handler(NSID.leaveConvo, async (req) => {
  const { input, caller, db, ctx } = req
  const { config } = ctx
  const { newEpoch, stored, events } = await removeMember(db, {
    convoId: input.convoId,
    caller,
    target: input.targetDid ?? caller,
    commit: withGroupInfo(
      readCommit(input.commit, config.MAX_COMMIT_BYTES, input.epoch),
      readGroupInfoField(input.groupInfo, config.MAX_GROUP_INFO_BYTES),
    ),
  })
  announce(req, stored, events)
  return { success: true, newEpoch }
})
