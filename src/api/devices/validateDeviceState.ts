import { NSID } from '../../lexicon/types/index.js'
import { devicesOf, deviceState, requireDevice } from '../../services/devices.js'
import { handler } from '../../xrpc/types.js'

export default handler(NSID.validateDeviceState, async ({ params, caller, db, ctx }) => {
  // The iOS client names no device: a user with one device is asking about it.
  let device = params.deviceId === undefined ? undefined : await requireDevice(db, caller, params.deviceId)
  if (!device) {
    const devices = await devicesOf(db, caller)
    if (devices.length === 1) device = devices[0]
  }
  return deviceState(db, { user: caller, device, target: ctx.config.KEY_PACKAGE_REPLENISH_THRESHOLD })
})
