import type * as ProcessExternalCommit from '../../lexicon/types/blue.catbird.mls.processExternalCommit.js'
import { NSID } from '../../lexicon/types/index.js'
import { deviceOfLeaf } from '../../services/pendingAdditions.js'
import { rejoin } from '../../services/rejoin.js'
import { iso } from '../../services/timestamps.js'
import { handler } from '../../xrpc/types.js'
import { announce } from '../announce.js'
import { convoOfMessage, readExternalCommitField, readGroupInfoField, withGroupInfo } from '../input.js'

const convoOf = convoOfMessage((input: ProcessExternalCommit.Input) => input.externalCommit, 'externalCommit')

export default handler(
  NSID.processExternalCommit,
  {
    // Rare, so the plain way: the record lives with the conversation, stored in the transaction the commit joins.
    keyedWrites: { recordedIn: 'transaction', shardKey: convoOf },
    // Which of the caller's devices joins (its leaf's key), read on the caller's shard before the transaction.
    reserve: async ({ input, caller, db, ctx }) =>
      deviceOfLeaf(db, {
        userDid: caller,
        signatureKey: readExternalCommitField(input.externalCommit, ctx.config.MAX_COMMIT_BYTES).joinerSignatureKey,
      }),
  },
  async (req) => {
    const { input, caller, db, ctx, reserved: deviceId } = req
    const { config } = ctx
    const { commit, joinerIdentity } = readExternalCommitField(input.externalCommit, config.MAX_COMMIT_BYTES)
    const stored = await rejoin(db, {
      convoId: convoOf(input),
      caller,
      commit: withGroupInfo(commit, readGroupInfoField(input.groupInfo, config.MAX_GROUP_INFO_BYTES)),
      joinerIdentity,
      deviceId,
    })
    announce(req, stored)
    return { epoch: stored.newEpoch, rejoinedAt: iso(stored.createdAt) }
  },
)
