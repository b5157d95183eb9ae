/**
 * Devices: registering a user's devices with their first key packages,
 * listing and deleting them, the conversations a device should be in, and
 * whether users take part in MLS chat (opting in and out), and what is
 * wrong with a device's standing.
 * Services: devices, optOuts.
 */
import { NSID } from '../../lexicon/types/index.js'
import deleteDevice from './deleteDevice.js'
import getExpectedConversations from './getExpectedConversations.js'
import getOptInStatus from './getOptInStatus.js'
import listDevices from './listDevices.js'
import optIn from './optIn.js'
import optOut from './optOut.js'
import registerDevice from './registerDevice.js'
import validateDeviceState from './validateDeviceState.js'

export const deviceHandlers = {
  [NSID.deleteDevice]: deleteDevice,
  [NSID.getExpectedConversations]: getExpectedConversations,
  [NSID.getOptInStatus]: getOptInStatus,
  [NSID.listDevices]: listDevices,
  [NSID.optIn]: optIn,
  [NSID.optOut]: optOut,
  [NSID.registerDevice]: registerDevice,
  [NSID.validateDeviceState]: validateDeviceState,
}
