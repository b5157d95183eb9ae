import { NSID } from '../../lexicon/types/index.js'
import { listCommits } from '../../services/commits.js'
import { requireMember } from '../../services/membership.js'
import { handler } from '../../xrpc/types.js'

/** Commits are bounded per response; a client asks again from the next epoch. */
const MAX_COMMITS = 100

export default handler(NSID.getCommits, async ({ params, caller, db }) => {
  const { convo } = await requireMember(db, params.convoId, caller)
  const commits = await listCommits(db, {
    convoId: convo.id,
    currentEpoch: convo.epoch,
    fromEpoch: params.fromEpoch,
    toEpoch: params.toEpoch,
    limit: MAX_COMMITS,
  })
  return { convoId: params.convoId, commits }
})
