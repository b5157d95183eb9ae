import { NSID } from '../../lexicon/types/index.js'
import { findConvoId } from '../../services/membership.js'
import { confirmWelcome } from '../../services/welcomes.js'
import { handler } from '../../xrpc/types.js'
import { deviceIdOf } from '../input.js'
import { reportWelcome } from '../reportWelcome.js'

/** A failed processing, as confirmWelcome with success false: kept for a retry, the reason recorded. */
export default handler(NSID.invalidateWelcome, async (req) => {
  const { input, caller, db } = req
  const { outcome, welcomeId } = await confirmWelcome(db, {
    convoId: await findConvoId(db, input.convoId),
    did: caller,
    deviceId: deviceIdOf(input.deviceId, caller),
    success: false,
    errorDetails: input.reason,
  })
  reportWelcome(req, input.convoId, outcome, input.reason)
  return {
    invalidated: outcome === 'confirmed_failure',
    ...(welcomeId !== undefined ? { welcomeId: String(welcomeId) } : {}),
  }
})
