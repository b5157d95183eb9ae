import { NSID } from '../../lexicon/types/index.js'
import { addMembers } from '../../services/members.js'
import { reserveWelcome } from '../../services/admission.js'
import { checkAdds, membersToCheck } from '../../services/blocks.js'
import { handler } from '../../xrpc/types.js'
import { announce } from '../announce.js'
import { readCommit, readGroupInfoField, readWelcomeField, withGroupInfo } from '../input.js'

export default handler(
  NSID.addMembers,
  {
    // The record lives with the conversation.
    keyedWrites: { recordedIn: 'transaction', shardKey: (input) => input.convoId },
    // Bluesky blocks between those added and the members (asked before any lock is held); then, unless
    // that refuses the add, the Welcome's key packages, on their owners' shards.
    reserve: async ({ input, caller, db, ctx }) => {
      const members = await membersToCheck(db, input.convoId, caller)
      const blocks = await checkAdds(db, ctx.blocks, {
        adding: members.length ? input.didList.filter((did) => !members.includes(did)) : [],
        existing: members,
        errorName: 'BlockedByMember',
      })
      if (blocks.refusal) return { blocks, welcome: undefined }
      const welcome = await reserveWelcome(db, {
        convoId: input.convoId,
        caller,
        dids: input.didList,
        welcome: readWelcomeField(input.welcomeMessage, ctx.config.MAX_WELCOME_BYTES),
      })
      return { blocks, welcome }
    },
  },
  async (req) => {
    const { input, caller, db, ctx, reserved, log } = req
    const { config } = ctx
    if (reserved.blocks.unchecked)
      log.warn({ reason: reserved.blocks.unchecked }, 'members added unchecked for Bluesky blocks')
    const { newEpoch, stored } = await addMembers(db, {
      convoId: input.convoId,
      caller,
      dids: input.didList,
      commit: withGroupInfo(
        readCommit(input.commit, config.MAX_COMMIT_BYTES, input.epoch),
        readGroupInfoField(input.groupInfo, config.MAX_GROUP_INFO_BYTES),
      ),
      welcome: reserved.welcome,
      blocks: reserved.blocks,
      maxMembers: config.MAX_MEMBERS_PER_CONVO,
      welcomeRetentionDays: config.WELCOME_RETENTION_DAYS,
    })
    announce(req, stored)
    return { success: true, newEpoch }
  },
)
