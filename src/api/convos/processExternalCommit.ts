import { NSID } from '../../lexicon/types/index.js'
import { rejoin } from '../../services/rejoin.js'
import { iso } from '../../services/timestamps.js'
import { handler } from '../../xrpc/types.js'
import { announce } from '../announce.js'
import { readExternalCommitField, readGroupInfoField, withGroupInfo } from '../input.js'

export default handler(
  NSID.processExternalCommit,
  // Rare, so the plain way: the record lives with the conversation, stored in the transaction the commit joins.
  { keyedWrites: { recordedIn: 'transaction', shardKey: (input) => input.convoId } },
  async (req) => {
    const { input, caller, db, ctx } = req
    const { config } = ctx
    const { commit, joinerIdentity } = readExternalCommitField(input.externalCommit, config.MAX_COMMIT_BYTES)
    const stored = await rejoin(db, {
      convoId: input.convoId,
      caller,
      commit: withGroupInfo(commit, readGroupInfoField(input.groupInfo, config.MAX_GROUP_INFO_BYTES)),
      joinerIdentity,
      push: ctx.push,
    })
    announce(req, stored)
    return { epoch: stored.newEpoch, rejoinedAt: iso(stored.createdAt) }
  },
)
