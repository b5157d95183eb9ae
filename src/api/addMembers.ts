import { NSID } from '../lexicon/types/index.js'
import { addMembers } from '../services/members.js'
import { handler } from '../xrpc/types.js'
import { announce } from './announce.js'
import { readCommit, readGroupInfoField, readWelcomeField, withGroupInfo } from './input.js'

export default handler(
  NSID.addMembers,
  async (req) => {
    const { input, caller, db, ctx } = req
    const { config } = ctx
    const { newEpoch, stored } = await addMembers(db, {
      convoId: input.convoId,
      caller,
      dids: input.didList,
      commit: withGroupInfo(
        readCommit(input.commit, config.MAX_COMMIT_BYTES, input.epoch),
        readGroupInfoField(input.groupInfo, config.MAX_GROUP_INFO_BYTES),
      ),
      welcome: readWelcomeField(input.welcomeMessage, config.MAX_WELCOME_BYTES),
      maxMembers: config.MAX_MEMBERS_PER_CONVO,
      welcomeRetentionDays: config.WELCOME_RETENTION_DAYS,
    })
    announce(req, stored)
    return { success: true, newEpoch }
  },
  // The record lives with the conversation.
  { recordedIn: 'transaction', shardKey: (input) => input.convoId },
)
