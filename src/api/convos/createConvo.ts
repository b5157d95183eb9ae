import { NSID } from '../../lexicon/types/index.js'
import { createConvo } from '../../services/convos.js'
import { convoIdOf } from '../../services/membership.js'
import { invalidRequest } from '../../xrpc/errors.js'
import { reserveWelcome } from '../../services/admission.js'
import { checkAdds } from '../../services/blocks.js'
import { handler } from '../../xrpc/types.js'
import { announce } from '../announce.js'
import { readCommit, readGroupInfoField, readWelcomeField, requireCipherSuite } from '../input.js'

export default handler(
  NSID.createConvo,
  {
    // The record lives with the conversation, whose id its group id gives.
    keyedWrites: { recordedIn: 'transaction', shardKey: (input) => convoIdOf(input.groupId) },
    // The Welcome's key packages, on their owners' shards; first what the input itself must be
    // (nothing is reserved for a conversation that cannot be created).
    // Then Bluesky blocks among the members, and the key packages unless that refuses it.
    reserve: async ({ input, caller, db, ctx }) => {
      requireCipherSuite(input.cipherSuite)
      if (!/^[0-9a-fA-F]+$/.test(input.groupId)) {
        throw invalidRequest(undefined, 'groupId must be a hex-encoded MLS group id')
      }
      const invited = (input.initialMembers ?? []).filter((did) => did !== caller)
      const blocks = await checkAdds(db, ctx.blocks, {
        adding: invited,
        existing: [caller],
        errorName: 'MutualBlockDetected',
      })
      if (blocks.refusal) return { blocks, welcome: undefined }
      const welcome = await reserveWelcome(db, {
        convoId: convoIdOf(input.groupId),
        caller,
        // The creator's own other devices may be in the first Welcome too.
        dids: [...(input.initialMembers ?? []), ...(input.keyPackageHashes ?? []).map((kp) => kp.did), caller],
        welcome: readWelcomeField(input.welcomeMessage, ctx.config.MAX_WELCOME_BYTES),
        keyPackageHashes: input.keyPackageHashes,
      })
      return { blocks, welcome }
    },
  },
  async (req) => {
    const { input, caller, db, ctx, reserved, log } = req
    const { config } = ctx
    if (reserved.blocks.unchecked)
      log.warn({ reason: reserved.blocks.unchecked }, 'members added unchecked for Bluesky blocks')
    const { convo, stored, events } = await createConvo(db, {
      creator: caller,
      groupId: input.groupId,
      cipherSuite: input.cipherSuite,
      initialMembers: input.initialMembers ?? [],
      welcome: reserved.welcome,
      blocks: reserved.blocks,
      // Its header's epoch is the one it was built on; currentEpoch is the one after it.
      commit: readCommit(input.commit, config.MAX_COMMIT_BYTES, undefined),
      groupInfo: readGroupInfoField(input.groupInfo, config.MAX_GROUP_INFO_BYTES),
      currentEpoch: input.currentEpoch,
      name: input.metadata?.name,
      description: input.metadata?.description,
      welcomeRetentionDays: config.WELCOME_RETENTION_DAYS,
      push: ctx.push,
    })
    announce(req, stored, events)
    return convo
  },
)
