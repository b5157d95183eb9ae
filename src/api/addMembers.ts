import type * as AddMembers from '../lexicon/types/blue.catbird.mls.addMembers.js'
import { addMembers } from '../services/members.js'
import { xrpcHandler } from '../xrpc/types.js'
import { decodeBinaryField } from './input.js'

export default xrpcHandler<AddMembers.Params, AddMembers.Input, AddMembers.Output>(
  async ({ input, caller, db, ctx }) => {
    const { config } = ctx
    const { newEpoch } = await addMembers(db, {
      convoId: input.convoId,
      caller,
      dids: input.didList,
      commit: decodeBinaryField(input.commit, 'commit', config.MAX_COMMIT_BYTES),
      expectedEpoch: input.epoch,
      welcome: decodeBinaryField(input.welcomeMessage, 'welcomeMessage', config.MAX_WELCOME_BYTES),
      maxMembers: config.MAX_MEMBERS_PER_CONVO,
      welcomeRetentionDays: config.WELCOME_RETENTION_DAYS,
    })
    return { success: true, newEpoch }
  },
)
