import { NSID } from '../../lexicon/types/index.js'
import { askMembers } from '../../services/convoEvents.js'
import { invalidRequest } from '../../xrpc/errors.js'
import { handler } from '../../xrpc/types.js'
import { announce } from '../announce.js'

/**
 * A member whose device can neither process its Welcome nor rejoin by
 * external commit asks the other current members to add it again: they hear
 * a readditionRequestedEvent, and one of them adds it with fresh key
 * packages (addMembers). NoActiveMembers when no one else is a member.
 */
export default handler(NSID.readdition, async (req) => {
  const { eventId, activeMembers } = await askMembers(req.db, {
    convoId: req.input.convoId,
    did: req.caller,
    request: 'readdition',
  })
  if (eventId === undefined) {
    throw invalidRequest('NoActiveMembers', 'No other current member could add you back')
  }
  announce(req, undefined, [eventId])
  return { requested: true, activeMembers }
})
