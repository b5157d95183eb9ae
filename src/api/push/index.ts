/**
 * Push notifications: the push token of each of a user's devices, which the
 * server's push worker (src/workers/push.ts) sends to.
 * Services: pushTokens.
 */
import { NSID } from '../../lexicon/types/index.js'
import registerDeviceToken from './registerDeviceToken.js'
import unregisterDeviceToken from './unregisterDeviceToken.js'

export const pushHandlers = {
  [NSID.registerDeviceToken]: registerDeviceToken,
  [NSID.unregisterDeviceToken]: unregisterDeviceToken,
}
