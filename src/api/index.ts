import { NSID, type Nsid } from '../lexicon/types/index.js'
import type { Handler } from '../xrpc/types.js'
import { convoHandlers } from './convos/index.js'
import { deviceAdditionHandlers } from './deviceAdditions/index.js'
import { deviceHandlers } from './devices/index.js'
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
  NSID.createInvite,
  NSID.declineChatRequest,
  NSID.demoteAdmin,
  NSID.demoteModerator,
  NSID.getAdminStats,
  NSID.getBlockStatus,
  NSID.getChatRequestSettings,
  NSID.getPolicy,
  NSID.getReports,
  NSID.getRequestCount,
  NSID.handleBlockChange,
  NSID.listChatRequests,
  NSID.listInvites,
  NSID.promoteAdmin,
  NSID.promoteModerator,
  NSID.registerDeviceToken,
  NSID.rejoin,
  NSID.removeMember,
  NSID.reportMember,
  NSID.resolveReport,
  NSID.revokeInvite,
  NSID.sendChatRequest,
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
  ...deviceHandlers,
  ...eventHandlers,
  ...deviceAdditionHandlers,
} satisfies { [N in Exclude<Nsid, (typeof notImplemented)[number]>]: Handler<N> }
