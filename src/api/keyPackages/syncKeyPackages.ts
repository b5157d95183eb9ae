import { NSID } from '../../lexicon/types/index.js'
import { requireDevice, syncDeviceKeyPackages } from '../../services/devices.js'
import { invalidRequest } from '../../xrpc/errors.js'
import { handler } from '../../xrpc/types.js'

/** A KeyPackageRef in hex: SHA-256 or SHA-512 long. */
const REF_HEX = /^(?:[0-9a-fA-F]{64}|[0-9a-fA-F]{128})$/

export default handler(NSID.syncKeyPackages, async ({ input, caller, db, ctx }) => {
  const held = input.localHashes.map((hash, i) => {
    if (!REF_HEX.test(hash)) {
      throw invalidRequest(undefined, `localHashes[${i}] is not a KeyPackageRef in hex (64 or 128 digits)`)
    }
    return Buffer.from(hash, 'hex')
  })
  // The iOS client names the device by its id in one place and by its own UUID in another.
  const device = await requireDevice(db, caller, input.deviceId)
  const { withdrawn, remaining, remainingAvailable } = await syncDeviceKeyPackages(db, {
    user: caller,
    device,
    held,
    welcomeRetentionDays: ctx.config.WELCOME_RETENTION_DAYS,
  })
  return {
    serverHashes: remaining,
    orphanedCount: withdrawn.length,
    deletedCount: withdrawn.length,
    orphanedHashes: withdrawn,
    remainingAvailable,
    deviceId: device.deviceId,
  }
})
