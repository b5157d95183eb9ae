import { NSID } from '../../lexicon/types/index.js'
import { requireDevice } from '../../services/devices.js'
import { optIn } from '../../services/optOuts.js'
import { iso } from '../../services/timestamps.js'
import { handler } from '../../xrpc/types.js'

export default handler(NSID.optIn, async ({ input, caller, db }) => {
  // The device opting in must be the caller's (the client names the one it just registered).
  if (input.deviceId !== undefined) await requireDevice(db, caller, input.deviceId)
  const { optedInAt } = await optIn(db, caller)
  return { optedIn: true, optedInAt: iso(optedInAt) }
})
