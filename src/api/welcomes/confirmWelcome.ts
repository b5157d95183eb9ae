import { NSID } from '../../lexicon/types/index.js'
import { findConvoId } from '../../services/membership.js'
import { confirmWelcome } from '../../services/welcomes.js'
import { handler } from '../../xrpc/types.js'
import { deviceIdOf } from '../input.js'
import { reportWelcome } from '../reportWelcome.js'

export default handler(NSID.confirmWelcome, async (req) => {
  const { input, caller, db } = req
  const { outcome } = await confirmWelcome(db, {
    convoId: await findConvoId(db, input.convoId),
    did: caller,
    deviceId: deviceIdOf(input.deviceId, caller),
    success: input.success,
    errorDetails: input.errorDetails,
  })
  reportWelcome(req, input.convoId, outcome, input.errorDetails)
  // A failure reported after the Welcome was consumed changes nothing: not accepted.
  return { confirmed: input.success || outcome !== 'already_consumed' }
})
