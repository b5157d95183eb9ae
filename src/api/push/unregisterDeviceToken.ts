import { NSID } from '../../lexicon/types/index.js'
import { unregisterPushToken } from '../../services/pushTokens.js'
import { handler } from '../../xrpc/types.js'

export default handler(NSID.unregisterDeviceToken, async ({ input, caller, db }) => {
  await unregisterPushToken(db, { did: caller, deviceId: input.deviceId })
  return { success: true }
})
