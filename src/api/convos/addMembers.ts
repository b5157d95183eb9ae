import type * as AddMembers from '../../lexicon/types/blue.catbird.mls.addMembers.js'
import { NSID } from '../../lexicon/types/index.js'
import { reserveWelcome } from '../../services/admission.js'
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
     * The Welcome's key packages, on their owners' shards: of the DIDs added,
     * of those keyPackageHashes names, and of the members whose new devices
     * the caller claimed to add (the client-era clients add them with an
     * empty didList).
     */
    reserve: async ({ input, caller, db, ctx }) => {
      const welcome = readWelcomeField(input.welcomeMessage, ctx.config.MAX_WELCOME_BYTES)
      if (!welcome) return undefined
      const convoId = convoOf(input)
      const claimed = await claimedAdditions(db, { convoId, caller })
      return reserveWelcome(db, {
        convoId,
        caller,
        dids: [
          ...input.didList,
          ...(input.keyPackageHashes ?? []).map((kp) => kp.did),
          ...claimed.map((a) => a.userDid),
        ],
        welcome,
        keyPackageHashes: input.keyPackageHashes,
      })
    },
  },
  async (req) => {
    const { input, caller, db, ctx, reserved } = req
    const { config } = ctx
    const { newEpoch, stored, events } = await addMembers(db, {
      convoId: convoOf(input),
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
