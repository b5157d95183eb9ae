import { NSID } from '../../lexicon/types/index.js'
import type * as LeaveConvo from '../../lexicon/types/blue.catbird.mls.leaveConvo.js'
import { removeMember } from '../../services/members.js'
import { findConvoId } from '../../services/membership.js'
import { handler } from '../../xrpc/types.js'
import { announce } from '../announce.js'
import { convoOfMessage, readCommit, readGroupInfoField, withGroupInfo } from '../input.js'

const convoOfCommit = convoOfMessage((input: LeaveConvo.Input) => input.commit, 'commit')

export default handler(NSID.leaveConvo, async (req) => {
  const { input, caller, db, ctx } = req
  const { config } = ctx
  const { newEpoch, stored, events } = await removeMember(db, {
    // Leaving without a commit names the conversation by nothing but convoId: looked up.
    convoId: input.commit ? convoOfCommit(input) : await findConvoId(db, input.convoId),
    caller,
    target: input.targetDid ?? caller,
    commit: withGroupInfo(
      readCommit(input.commit, config.MAX_COMMIT_BYTES, input.epoch),
      readGroupInfoField(input.groupInfo, config.MAX_GROUP_INFO_BYTES),
    ),
    push: ctx.push,
  })
  announce(req, stored, events)
  return { success: true, newEpoch }
})
