import type * as RemoveMember from '../../lexicon/types/blue.catbird.mls.removeMember.js'
import { NSID } from '../../lexicon/types/index.js'
import { removeMember } from '../../services/members.js'
import { currentGroupInfo } from '../../services/removal.js'
import { invalidRequest } from '../../xrpc/errors.js'
import { handler } from '../../xrpc/types.js'
import { announce } from '../announce.js'
import { convoOfMessage, readCommit, readRemoval } from '../input.js'

const convoOf = convoOfMessage((input: RemoveMember.Input) => input.commit, 'commit')

/**
 * An admin removes a member with the MLS commit that removes all of the
 * member's leaves, sent as a PublicMessage so that the server can check it
 * against the ratchet tree of the GroupInfo it keeps (services/removal.ts).
 */
export default handler(
  NSID.removeMember,
  { keyedWrites: { recordedIn: 'transaction', shardKey: convoOf } },
  async (req) => {
    const { input, caller, db, ctx } = req
    if (input.targetDid === caller) {
      throw invalidRequest('CannotRemoveSelf', 'You cannot remove yourself: leave with leaveConvo')
    }
    const commit = readCommit(input.commit, ctx.config.MAX_COMMIT_BYTES, undefined)
    if (!commit) {
      throw invalidRequest(
        undefined,
        "commit is required: the MLS commit (a PublicMessage) removing all of the member's leaves; without it the member would keep the group's keys",
      )
    }
    const convoId = convoOf(input)
    const { newEpoch, stored, events } = await removeMember(db, {
      convoId,
      caller,
      target: input.targetDid,
      commit,
      removal: await readRemoval(commit, await currentGroupInfo(db, convoId)),
      reason: input.reason,
      push: ctx.push,
    })
    announce(req, stored, events)
    return { ok: true, epochHint: newEpoch }
  },
)
