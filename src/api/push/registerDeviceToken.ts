import { NSID } from '../../lexicon/types/index.js'
import { registerPushToken } from '../../services/pushTokens.js'
import { handler } from '../../xrpc/types.js'

export default handler(NSID.registerDeviceToken, async ({ input, caller, db }) => {
  await registerPushToken(db, {
    did: caller,
    deviceId: input.deviceId,
    token: input.pushToken,
    platform: input.platform,
    deviceName: input.deviceName,
  })
  return { success: true }
})
