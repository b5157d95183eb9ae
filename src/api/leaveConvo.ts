import type * as LeaveConvo from '../lexicon/types/blue.catbird.mls.leaveConvo.js'
import { removeMember } from '../services/members.js'
import { xrpcHandler } from '../xrpc/types.js'
import { decodeBinaryField } from './input.js'

export default xrpcHandler<LeaveConvo.Params, LeaveConvo.Input, LeaveConvo.Output>(
  async ({ input, caller, db, ctx }) => {
    const { newEpoch } = await removeMember(db, {
      convoId: input.convoId,
      caller,
      target: input.targetDid ?? caller,
      commit: decodeBinaryField(input.commit, 'commit', ctx.config.MAX_COMMIT_BYTES),
      expectedEpoch: input.epoch,
    })
    return { success: true, newEpoch }
  },
)
