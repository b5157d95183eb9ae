import type * as AddMembers from '../../lexicon/types/blue.catbird.mls.addMembers.js'
import { NSID } from '../../lexicon/types/index.js'
import { reserveWelcome } from '../../services/admission.js'
import { checkAdds, membersToCheck } from '../../services/blocks.js'
import { addMembers } from '../../services/members.js'
import { claimedAdditions } from '../../services/pendingAdditions.js'
import { handler } from '../../xrpc/types.js'
import { announce } from '../announce.js'
import { convoOfMessage, readCommit, readGroupInfoField, readWelcomeField, withGroupInfo } from '../input.js'

const convoOf = convoOfMessage((input: AddMembers.Input) => input.commit, 'commit')

export default handler(
  NSID.addMembers,
  {
    // The record lives with the conversation.
    keyedWrites: { recordedIn: 'transaction', shardKey: convoOf },
    /**
     * Bluesky blocks between those added and the members (asked before any
     * lock is held); then, unless that refuses the add, the Welcome's key
     * packages, on their owners' shards: of the DIDs added, of those
     * keyPackageHashes names, and of the members whose new devices the caller
     * claimed to add (the client-era clients add them with an empty didList).
     */
    reserve: async ({ input, caller, db, ctx }) => {
      const convoId = convoOf(input)
      const members = await membersToCheck(db, convoId, caller)
      const blocks = await checkAdds(db, ctx.blocks, {
        adding: members.length ? input.didList.filter((did) => !members.includes(did)) : [],
        existing: members,
        errorName: 'BlockedByMember',
      })
      const welcome = readWelcomeField(input.welcomeMessage, ctx.config.MAX_WELCOME_BYTES)
      if (blocks.refusal || !welcome) return { blocks, welcome: undefined }
      const claimed = await claimedAdditions(db, { convoId, caller })
      return {
        blocks,
        welcome: await reserveWelcome(db, {
          convoId,
          caller,
          dids: [
            ...input.didList,
            ...(input.keyPackageHashes ?? []).map((kp) => kp.did),
            ...claimed.map((a) => a.userDid),
          ],
          welcome,
          keyPackageHashes: input.keyPackageHashes,
        }),
      }
    },
  },
  async (req) => {
    const { input, caller, db, ctx, reserved, log } = req
    const { config } = ctx
    if (reserved.blocks.unchecked)
      log.warn({ reason: reserved.blocks.unchecked }, 'members added unchecked for Bluesky blocks')
    const { newEpoch, stored, events } = await addMembers(db, {
      convoId: convoOf(input),
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
      push: ctx.push,
    })
    announce(req, stored, events)
    return { success: true, newEpoch }
  },
)
