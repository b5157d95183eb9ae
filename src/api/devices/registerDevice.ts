import { NSID } from '../../lexicon/types/index.js'
import { currentGroupIds, registerDevice } from '../../services/devices.js'
import { mlsDidOf } from '../../services/pendingAdditions.js'
import { invalidRequest } from '../../xrpc/errors.js'
import { announce } from '../announce.js'
import { handler } from '../../xrpc/types.js'
import { readEach, readKeyPackageInput } from '../input.js'

const MAX_KEY_PACKAGES = 200
const ED25519_PUBLIC_KEY_BYTES = 32
/** The client's UUID is kept in an index: bounded well below what one can hold. */
const MAX_DEVICE_UUID_LENGTH = 128

const invalidKeyPackages = (message: string) => invalidRequest('InvalidKeyPackages', message)

/** The client's own id of the device, under either name the clients send it; an empty one is none. */
function deviceUuidOf(input: { deviceUUID?: string; deviceUuid?: string }): string | undefined {
  const { deviceUUID, deviceUuid } = input
  if (deviceUUID && deviceUuid && deviceUUID !== deviceUuid) {
    throw invalidRequest(undefined, 'deviceUUID and deviceUuid name the same thing: give one, or both equal')
  }
  const uuid = deviceUUID || deviceUuid || undefined
  if (uuid !== undefined && uuid.length > MAX_DEVICE_UUID_LENGTH) {
    throw invalidRequest(undefined, `deviceUUID is longer than ${MAX_DEVICE_UUID_LENGTH} characters`)
  }
  return uuid
}

export default handler(NSID.registerDevice, async (req) => {
  const { input, caller, db, ctx, log } = req
  const deviceUuid = deviceUuidOf(input)
  if (input.signaturePublicKey.length !== ED25519_PUBLIC_KEY_BYTES) {
    throw invalidRequest('InvalidSignatureKey', 'signaturePublicKey must be a raw Ed25519 public key (32 bytes)')
  }
  const count = input.keyPackages.length
  if (count < 1 || count > MAX_KEY_PACKAGES) {
    throw invalidKeyPackages(`keyPackages holds ${count} key packages, not 1 to ${MAX_KEY_PACKAGES}`)
  }
  // Each checked as publishKeyPackage checks one; the first refused one refuses the registration.
  const read = await readEach(input.keyPackages, (item) =>
    readKeyPackageInput(item, { owner: caller, maxLifetimeDays: ctx.config.KEY_PACKAGE_MAX_LIFETIME_DAYS }),
  )
  const refused = read.findIndex((item) => item.refused !== undefined)
  if (refused >= 0) throw invalidKeyPackages(`keyPackages[${refused}]: ${read[refused]?.refused}`)
  const checked = read.flatMap((item) => (item.ok ? [item.ok] : []))
  // The device's MLS key, by fact: its packages are all signed by it.
  const mlsKey = (checked[0] as (typeof checked)[number]).signatureKey
  const stranger = checked.findIndex((kp) => !Buffer.from(kp.signatureKey).equals(mlsKey))
  if (stranger >= 0) {
    throw invalidKeyPackages(
      `keyPackages[${stranger}] is signed by another key than keyPackages[0]: a device's key packages share its one MLS signature key`,
    )
  }
  const registration = await registerDevice(db, {
    user: caller,
    deviceUuid,
    name: input.deviceName,
    signaturePublicKey: input.signaturePublicKey,
    mlsKey,
    keyPackages: checked,
    maxDevices: ctx.config.MAX_DEVICES_PER_USER,
    maxKeyPackages: ctx.config.MAX_KEY_PACKAGES_PER_USER,
  })
  const stored = registration.outcomes.filter((outcome) => outcome === 'stored').length
  log.info(
    { deviceId: registration.deviceId, created: registration.created, stored, withdrawn: registration.withdrawn },
    'device registered',
  )
  announce(req, undefined, registration.events)
  return {
    deviceId: registration.deviceId,
    mlsDid: mlsDidOf(caller, registration.deviceId),
    // Its user's conversations, which the device joins by external commit (or is added to).
    autoJoinedConvos: await currentGroupIds(db, caller),
  }
})
