import { NSID } from '../../lexicon/types/index.js'
import { addMembers } from '../../services/members.js'
import { reserveWelcome } from '../../services/admission.js'
import { handler } from '../../xrpc/types.js'
import { announce } from '../announce.js'
import { readCommit, readGroupInfoField, readWelcomeField, withGroupInfo } from '../input.js'

export default handler(
  NSID.addMembers,
  {
    // The record lives with the conversation.
    keyedWrites: { recordedIn: 'transaction', shardKey: (input) => input.convoId },
    // The Welcome's key packages, on their owners' shards.
    reserve: ({ input, caller, db, ctx }) =>
      reserveWelcome(db, {
        convoId: input.convoId,
        caller,
        dids: input.didList,
        welcome: readWelcomeField(input.welcomeMessage, ctx.config.MAX_WELCOME_BYTES),
      }),
  },
  async (req) => {
    const { input, caller, db, ctx, reserved } = req
    const { config } = ctx
    const { newEpoch, stored, events } = await addMembers(db, {
      convoId: input.convoId,
      caller,
      dids: input.didList,
      commit: withGroupInfo(
        readCommit(input.commit, config.MAX_COMMIT_BYTES, input.epoch),
        readGroupInfoField(input.groupInfo, config.MAX_GROUP_INFO_BYTES),
      ),
      welcome: reserved,
      maxMembers: config.MAX_MEMBERS_PER_CONVO,
      welcomeRetentionDays: config.WELCOME_RETENTION_DAYS,
    })
    announce(req, stored, events)
    return { success: true, newEpoch }
  },
)
