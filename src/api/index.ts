import { NSID, type Nsid } from '../lexicon/types/index.js'
import type { Handler } from '../xrpc/types.js'
import { adminHandlers } from './admin/index.js'
import { blockHandlers } from './blocks/index.js'
import { convoHandlers } from './convos/index.js'
import { deviceAdditionHandlers } from './deviceAdditions/index.js'
import { deviceHandlers } from './devices/index.js'
import { eventHandlers } from './events/index.js'
export { subscriptionHandlers } from './events/index.js'
import { keyPackageHandlers } from './keyPackages/index.js'
import { messageHandlers } from './messages/index.js'
import { pushHandlers } from './push/index.js'
import { requestHandlers } from './requests/index.js'
import { welcomeHandlers } from './welcomes/index.js'

/**
 * Methods of the lexicons this server does not implement yet (the client-era
 * set's: devices, batch key packages, invites, warnings, the chat request mailbox):
 * they answer 501 MethodNotImplemented, after authentication.
 */
export const notImplemented = [
  NSID.acceptChatRequest,
  NSID.blockChatSender,
  NSID.createInvite,
  NSID.declineChatRequest,
  NSID.getChatRequestSettings,
  NSID.listInvites,
  NSID.rejoin,
  NSID.revokeInvite,
  NSID.sendChatRequest,
  NSID.updateChatRequestSettings,
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
  ...adminHandlers,
  ...blockHandlers,
  ...requestHandlers,
  ...deviceAdditionHandlers,
  ...pushHandlers,
} satisfies { [N in Exclude<Nsid, (typeof notImplemented)[number]>]: Handler<N> }
