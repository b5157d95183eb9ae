import { NSID, type Nsid } from '../lexicon/types/index.js'
import type { Handler } from '../xrpc/types.js'
import addMembers from './addMembers.js'
import confirmWelcome from './confirmWelcome.js'
import createConvo from './createConvo.js'
import getCommits from './getCommits.js'
import getConvos from './getConvos.js'
import getEpoch from './getEpoch.js'
import getGroupInfo from './getGroupInfo.js'
import getKeyPackages from './getKeyPackages.js'
import getKeyPackageStats from './getKeyPackageStats.js'
import getMessages from './getMessages.js'
import getWelcome from './getWelcome.js'
import leaveConvo from './leaveConvo.js'
import processExternalCommit from './processExternalCommit.js'
import publishKeyPackage from './publishKeyPackage.js'
import sendMessage from './sendMessage.js'
import streamConvoEvents from './streamConvoEvents.js'
import updateGroupInfo from './updateGroupInfo.js'

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
  NSID.getSubscriptionTicket,
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

/** The handler of each NSID (all of them but those not implemented yet: a method added to the lexicons is one or the other). */
export const handlers = {
  [NSID.addMembers]: addMembers,
  [NSID.confirmWelcome]: confirmWelcome,
  [NSID.createConvo]: createConvo,
  [NSID.getCommits]: getCommits,
  [NSID.getConvos]: getConvos,
  [NSID.getEpoch]: getEpoch,
  [NSID.getGroupInfo]: getGroupInfo,
  [NSID.getKeyPackages]: getKeyPackages,
  [NSID.getKeyPackageStats]: getKeyPackageStats,
  [NSID.getMessages]: getMessages,
  [NSID.getWelcome]: getWelcome,
  [NSID.leaveConvo]: leaveConvo,
  [NSID.processExternalCommit]: processExternalCommit,
  [NSID.publishKeyPackage]: publishKeyPackage,
  [NSID.sendMessage]: sendMessage,
  [NSID.streamConvoEvents]: streamConvoEvents,
  [NSID.updateGroupInfo]: updateGroupInfo,
} satisfies { [N in Exclude<Nsid, (typeof notImplemented)[number]>]: Handler<N> }
