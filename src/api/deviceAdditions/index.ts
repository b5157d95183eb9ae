/**
 * Adding a member's new device to its conversations: the additions waiting,
 * a member's claim on one (with the device's key package), its completion.
 * Services: pendingAdditions, keyPackages.
 */
import { NSID } from '../../lexicon/types/index.js'
import claimPendingDeviceAddition from './claimPendingDeviceAddition.js'
import completePendingDeviceAddition from './completePendingDeviceAddition.js'
import getPendingDeviceAdditions from './getPendingDeviceAdditions.js'

export const deviceAdditionHandlers = {
  [NSID.claimPendingDeviceAddition]: claimPendingDeviceAddition,
  [NSID.completePendingDeviceAddition]: completePendingDeviceAddition,
  [NSID.getPendingDeviceAdditions]: getPendingDeviceAdditions,
}
