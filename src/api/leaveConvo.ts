import type * as LeaveConvo from '../lexicon/types/blue.catbird.mls.leaveConvo.js'
import { removeMember } from '../services/members.js'
import { xrpcHandler } from '../xrpc/types.js'
import { announce } from './announce.js'
import { readCommit } from './input.js'

export default xrpcHandler<LeaveConvo.Params, LeaveConvo.Input, LeaveConvo.Output>(async (req) => {
  const { input, caller, db, ctx } = req
  const { newEpoch, stored } = await removeMember(db, {
    convoId: input.convoId,
    caller,
    target: input.targetDid ?? caller,
    commit: readCommit(input.commit, ctx.config.MAX_COMMIT_BYTES, input.epoch),
  })
  announce(req, stored)
  return { success: true, newEpoch }
})
