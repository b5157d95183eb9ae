import { NSID } from '../../lexicon/types/index.js'
import { askMembers } from '../../services/convoEvents.js'
import { handler } from '../../xrpc/types.js'
import { announce } from '../announce.js'

/**
 * A member whose stored GroupInfo is stale or missing asks the other current
 * members for a fresh one: they hear a groupInfoRefreshRequestedEvent, and
 * whoever is online stores one (updateGroupInfo). Not requested when no one
 * else is a member.
 */
export default handler(NSID.groupInfoRefresh, async (req) => {
  const { eventId, activeMembers } = await askMembers(req.db, {
    convoId: req.input.convoId,
    did: req.caller,
    request: 'group_info_refresh',
  })
  if (eventId !== undefined) announce(req, undefined, [eventId])
  return { requested: eventId !== undefined, activeMembers }
})
