import { NSID, type Nsid } from '../lexicon/types/index.js'
import type { Handler } from '../xrpc/types.js'
import { convoHandlers } from './convos/index.js'
import { eventHandlers } from './events/index.js'
export { subscriptionHandlers } from './events/index.js'
import { keyPackageHandlers } from './keyPackages/index.js'
import { messageHandlers } from './messages/index.js'
import { welcomeHandlers } from './welcomes/index.js'

/**
 * Methods of the lexicons this server does not implement yet (the client-era
 * set's: devices, batch key packages, administration, chat requests, blocks):
 * they answer 501 MethodNotImplemented, after authentication.
 */
export const notImplemented = [
  NSID.acceptChatRequest,
  NSID.blockChatSender,
  NSID.checkBlocks,
  NSID.claimPendingDeviceAddition,
  NSID.completePendingDeviceAddition,
  NSID.createInvite,
  NSID.declineChatRequest,
  NSID.deleteDevice,
  NSID.demoteAdmin,
  NSID.demoteModerator,
  NSID.getAdminStats,
  NSID.getBlockStatus,
  NSID.getChatRequestSettings,
  NSID.getExpectedConversations,
  NSID.getKeyPackageHistory,
  NSID.getKeyPackageStatus,
  NSID.getOptInStatus,
  NSID.getPendingDeviceAdditions,
  NSID.getPolicy,
  NSID.getReports,
  NSID.getRequestCount,
  NSID.groupInfoRefresh,
  NSID.handleBlockChange,
  NSID.invalidateWelcome,
  NSID.listChatRequests,
  NSID.listDevices,
  NSID.listInvites,
  NSID.optIn,
  NSID.optOut,
  NSID.promoteAdmin,
  NSID.promoteModerator,
  NSID.publishKeyPackages,
  NSID.readdition,
  NSID.registerDevice,
  NSID.registerDeviceToken,
  NSID.rejoin,
  NSID.removeMember,
  NSID.reportMember,
  NSID.resolveReport,
  NSID.revokeInvite,
  NSID.sendChatRequest,
  NSID.syncKeyPackages,
  NSID.unregisterDeviceToken,
  NSID.updateChatRequestSettings,
  NSID.updatePolicy,
  NSID.validateDeviceState,
  NSID.validateWelcome,
  NSID.warnMember,
] as const satisfies readonly Nsid[]

/** The handler of each NSID, by feature: every method of the lexicons is either here or not implemented yet. */
export const handlers = {
  ...convoHandlers,
  ...messageHandlers,
  ...welcomeHandlers,
  ...keyPackageHandlers,
  ...eventHandlers,
} satisfies { [N in Exclude<Nsid, (typeof notImplemented)[number]>]: Handler<N> }
