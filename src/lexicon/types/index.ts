// Generated from lexicons/ by scripts/gen-lexicon-types.ts. Do not edit.
import type * as BlueCatbirdMlsAcceptChatRequest from './blue.catbird.mls.acceptChatRequest.js'
import type * as BlueCatbirdMlsAddMembers from './blue.catbird.mls.addMembers.js'
import type * as BlueCatbirdMlsBlockChatSender from './blue.catbird.mls.blockChatSender.js'
import type * as BlueCatbirdMlsCheckBlocks from './blue.catbird.mls.checkBlocks.js'
import type * as BlueCatbirdMlsClaimPendingDeviceAddition from './blue.catbird.mls.claimPendingDeviceAddition.js'
import type * as BlueCatbirdMlsCompletePendingDeviceAddition from './blue.catbird.mls.completePendingDeviceAddition.js'
import type * as BlueCatbirdMlsConfirmWelcome from './blue.catbird.mls.confirmWelcome.js'
import type * as BlueCatbirdMlsCreateConvo from './blue.catbird.mls.createConvo.js'
import type * as BlueCatbirdMlsCreateInvite from './blue.catbird.mls.createInvite.js'
import type * as BlueCatbirdMlsDeclineChatRequest from './blue.catbird.mls.declineChatRequest.js'
import type * as BlueCatbirdMlsDeleteDevice from './blue.catbird.mls.deleteDevice.js'
import type * as BlueCatbirdMlsDemoteAdmin from './blue.catbird.mls.demoteAdmin.js'
import type * as BlueCatbirdMlsDemoteModerator from './blue.catbird.mls.demoteModerator.js'
import type * as BlueCatbirdMlsGetAdminStats from './blue.catbird.mls.getAdminStats.js'
import type * as BlueCatbirdMlsGetBlockStatus from './blue.catbird.mls.getBlockStatus.js'
import type * as BlueCatbirdMlsGetChatRequestSettings from './blue.catbird.mls.getChatRequestSettings.js'
import type * as BlueCatbirdMlsGetCommits from './blue.catbird.mls.getCommits.js'
import type * as BlueCatbirdMlsGetConvos from './blue.catbird.mls.getConvos.js'
import type * as BlueCatbirdMlsGetEpoch from './blue.catbird.mls.getEpoch.js'
import type * as BlueCatbirdMlsGetExpectedConversations from './blue.catbird.mls.getExpectedConversations.js'
import type * as BlueCatbirdMlsGetGroupInfo from './blue.catbird.mls.getGroupInfo.js'
import type * as BlueCatbirdMlsGetKeyPackageHistory from './blue.catbird.mls.getKeyPackageHistory.js'
import type * as BlueCatbirdMlsGetKeyPackageStats from './blue.catbird.mls.getKeyPackageStats.js'
import type * as BlueCatbirdMlsGetKeyPackageStatus from './blue.catbird.mls.getKeyPackageStatus.js'
import type * as BlueCatbirdMlsGetKeyPackages from './blue.catbird.mls.getKeyPackages.js'
import type * as BlueCatbirdMlsGetMessages from './blue.catbird.mls.getMessages.js'
import type * as BlueCatbirdMlsGetOptInStatus from './blue.catbird.mls.getOptInStatus.js'
import type * as BlueCatbirdMlsGetPendingDeviceAdditions from './blue.catbird.mls.getPendingDeviceAdditions.js'
import type * as BlueCatbirdMlsGetPolicy from './blue.catbird.mls.getPolicy.js'
import type * as BlueCatbirdMlsGetReports from './blue.catbird.mls.getReports.js'
import type * as BlueCatbirdMlsGetRequestCount from './blue.catbird.mls.getRequestCount.js'
import type * as BlueCatbirdMlsGetSubscriptionTicket from './blue.catbird.mls.getSubscriptionTicket.js'
import type * as BlueCatbirdMlsGetWelcome from './blue.catbird.mls.getWelcome.js'
import type * as BlueCatbirdMlsGroupInfoRefresh from './blue.catbird.mls.groupInfoRefresh.js'
import type * as BlueCatbirdMlsHandleBlockChange from './blue.catbird.mls.handleBlockChange.js'
import type * as BlueCatbirdMlsInvalidateWelcome from './blue.catbird.mls.invalidateWelcome.js'
import type * as BlueCatbirdMlsLeaveConvo from './blue.catbird.mls.leaveConvo.js'
import type * as BlueCatbirdMlsListChatRequests from './blue.catbird.mls.listChatRequests.js'
import type * as BlueCatbirdMlsListDevices from './blue.catbird.mls.listDevices.js'
import type * as BlueCatbirdMlsListInvites from './blue.catbird.mls.listInvites.js'
import type * as BlueCatbirdMlsOptIn from './blue.catbird.mls.optIn.js'
import type * as BlueCatbirdMlsOptOut from './blue.catbird.mls.optOut.js'
import type * as BlueCatbirdMlsProcessExternalCommit from './blue.catbird.mls.processExternalCommit.js'
import type * as BlueCatbirdMlsPromoteAdmin from './blue.catbird.mls.promoteAdmin.js'
import type * as BlueCatbirdMlsPromoteModerator from './blue.catbird.mls.promoteModerator.js'
import type * as BlueCatbirdMlsPublishKeyPackage from './blue.catbird.mls.publishKeyPackage.js'
import type * as BlueCatbirdMlsPublishKeyPackages from './blue.catbird.mls.publishKeyPackages.js'
import type * as BlueCatbirdMlsReaddition from './blue.catbird.mls.readdition.js'
import type * as BlueCatbirdMlsRegisterDevice from './blue.catbird.mls.registerDevice.js'
import type * as BlueCatbirdMlsRegisterDeviceToken from './blue.catbird.mls.registerDeviceToken.js'
import type * as BlueCatbirdMlsRejoin from './blue.catbird.mls.rejoin.js'
import type * as BlueCatbirdMlsRemoveMember from './blue.catbird.mls.removeMember.js'
import type * as BlueCatbirdMlsReportMember from './blue.catbird.mls.reportMember.js'
import type * as BlueCatbirdMlsResolveReport from './blue.catbird.mls.resolveReport.js'
import type * as BlueCatbirdMlsRevokeInvite from './blue.catbird.mls.revokeInvite.js'
import type * as BlueCatbirdMlsSendChatRequest from './blue.catbird.mls.sendChatRequest.js'
import type * as BlueCatbirdMlsSendMessage from './blue.catbird.mls.sendMessage.js'
import type * as BlueCatbirdMlsStreamConvoEvents from './blue.catbird.mls.streamConvoEvents.js'
import type * as BlueCatbirdMlsSubscribeConvoEvents from './blue.catbird.mls.subscribeConvoEvents.js'
import type * as BlueCatbirdMlsSyncKeyPackages from './blue.catbird.mls.syncKeyPackages.js'
import type * as BlueCatbirdMlsUnregisterDeviceToken from './blue.catbird.mls.unregisterDeviceToken.js'
import type * as BlueCatbirdMlsUpdateChatRequestSettings from './blue.catbird.mls.updateChatRequestSettings.js'
import type * as BlueCatbirdMlsUpdateGroupInfo from './blue.catbird.mls.updateGroupInfo.js'
import type * as BlueCatbirdMlsUpdatePolicy from './blue.catbird.mls.updatePolicy.js'
import type * as BlueCatbirdMlsValidateDeviceState from './blue.catbird.mls.validateDeviceState.js'
import type * as BlueCatbirdMlsValidateWelcome from './blue.catbird.mls.validateWelcome.js'
import type * as BlueCatbirdMlsWarnMember from './blue.catbird.mls.warnMember.js'

/** The NSID of each XRPC method, by its name. */
export const NSID = {
  acceptChatRequest: "blue.catbird.mls.acceptChatRequest",
  addMembers: "blue.catbird.mls.addMembers",
  blockChatSender: "blue.catbird.mls.blockChatSender",
  checkBlocks: "blue.catbird.mls.checkBlocks",
  claimPendingDeviceAddition: "blue.catbird.mls.claimPendingDeviceAddition",
  completePendingDeviceAddition: "blue.catbird.mls.completePendingDeviceAddition",
  confirmWelcome: "blue.catbird.mls.confirmWelcome",
  createConvo: "blue.catbird.mls.createConvo",
  createInvite: "blue.catbird.mls.createInvite",
  declineChatRequest: "blue.catbird.mls.declineChatRequest",
  deleteDevice: "blue.catbird.mls.deleteDevice",
  demoteAdmin: "blue.catbird.mls.demoteAdmin",
  demoteModerator: "blue.catbird.mls.demoteModerator",
  getAdminStats: "blue.catbird.mls.getAdminStats",
  getBlockStatus: "blue.catbird.mls.getBlockStatus",
  getChatRequestSettings: "blue.catbird.mls.getChatRequestSettings",
  getCommits: "blue.catbird.mls.getCommits",
  getConvos: "blue.catbird.mls.getConvos",
  getEpoch: "blue.catbird.mls.getEpoch",
  getExpectedConversations: "blue.catbird.mls.getExpectedConversations",
  getGroupInfo: "blue.catbird.mls.getGroupInfo",
  getKeyPackageHistory: "blue.catbird.mls.getKeyPackageHistory",
  getKeyPackageStats: "blue.catbird.mls.getKeyPackageStats",
  getKeyPackageStatus: "blue.catbird.mls.getKeyPackageStatus",
  getKeyPackages: "blue.catbird.mls.getKeyPackages",
  getMessages: "blue.catbird.mls.getMessages",
  getOptInStatus: "blue.catbird.mls.getOptInStatus",
  getPendingDeviceAdditions: "blue.catbird.mls.getPendingDeviceAdditions",
  getPolicy: "blue.catbird.mls.getPolicy",
  getReports: "blue.catbird.mls.getReports",
  getRequestCount: "blue.catbird.mls.getRequestCount",
  getSubscriptionTicket: "blue.catbird.mls.getSubscriptionTicket",
  getWelcome: "blue.catbird.mls.getWelcome",
  groupInfoRefresh: "blue.catbird.mls.groupInfoRefresh",
  handleBlockChange: "blue.catbird.mls.handleBlockChange",
  invalidateWelcome: "blue.catbird.mls.invalidateWelcome",
  leaveConvo: "blue.catbird.mls.leaveConvo",
  listChatRequests: "blue.catbird.mls.listChatRequests",
  listDevices: "blue.catbird.mls.listDevices",
  listInvites: "blue.catbird.mls.listInvites",
  optIn: "blue.catbird.mls.optIn",
  optOut: "blue.catbird.mls.optOut",
  processExternalCommit: "blue.catbird.mls.processExternalCommit",
  promoteAdmin: "blue.catbird.mls.promoteAdmin",
  promoteModerator: "blue.catbird.mls.promoteModerator",
  publishKeyPackage: "blue.catbird.mls.publishKeyPackage",
  publishKeyPackages: "blue.catbird.mls.publishKeyPackages",
  readdition: "blue.catbird.mls.readdition",
  registerDevice: "blue.catbird.mls.registerDevice",
  registerDeviceToken: "blue.catbird.mls.registerDeviceToken",
  rejoin: "blue.catbird.mls.rejoin",
  removeMember: "blue.catbird.mls.removeMember",
  reportMember: "blue.catbird.mls.reportMember",
  resolveReport: "blue.catbird.mls.resolveReport",
  revokeInvite: "blue.catbird.mls.revokeInvite",
  sendChatRequest: "blue.catbird.mls.sendChatRequest",
  sendMessage: "blue.catbird.mls.sendMessage",
  streamConvoEvents: "blue.catbird.mls.streamConvoEvents",
  syncKeyPackages: "blue.catbird.mls.syncKeyPackages",
  unregisterDeviceToken: "blue.catbird.mls.unregisterDeviceToken",
  updateChatRequestSettings: "blue.catbird.mls.updateChatRequestSettings",
  updateGroupInfo: "blue.catbird.mls.updateGroupInfo",
  updatePolicy: "blue.catbird.mls.updatePolicy",
  validateDeviceState: "blue.catbird.mls.validateDeviceState",
  validateWelcome: "blue.catbird.mls.validateWelcome",
  warnMember: "blue.catbird.mls.warnMember",
} as const

export type Nsid = (typeof NSID)[keyof typeof NSID]

/**
 * What each method takes and gives. `encoding` is its output's: an event
 * stream's (`text/event-stream`) `output` is one event.
 */
export interface Methods {
  "blue.catbird.mls.acceptChatRequest": { type: "procedure"; encoding: "application/json"; params: BlueCatbirdMlsAcceptChatRequest.Params; input: BlueCatbirdMlsAcceptChatRequest.Input; output: BlueCatbirdMlsAcceptChatRequest.Output }
  "blue.catbird.mls.addMembers": { type: "procedure"; encoding: "application/json"; params: BlueCatbirdMlsAddMembers.Params; input: BlueCatbirdMlsAddMembers.Input; output: BlueCatbirdMlsAddMembers.Output }
  "blue.catbird.mls.blockChatSender": { type: "procedure"; encoding: "application/json"; params: BlueCatbirdMlsBlockChatSender.Params; input: BlueCatbirdMlsBlockChatSender.Input; output: BlueCatbirdMlsBlockChatSender.Output }
  "blue.catbird.mls.checkBlocks": { type: "query"; encoding: "application/json"; params: BlueCatbirdMlsCheckBlocks.Params; input: undefined; output: BlueCatbirdMlsCheckBlocks.Output }
  "blue.catbird.mls.claimPendingDeviceAddition": { type: "procedure"; encoding: "application/json"; params: BlueCatbirdMlsClaimPendingDeviceAddition.Params; input: BlueCatbirdMlsClaimPendingDeviceAddition.Input; output: BlueCatbirdMlsClaimPendingDeviceAddition.Output }
  "blue.catbird.mls.completePendingDeviceAddition": { type: "procedure"; encoding: "application/json"; params: BlueCatbirdMlsCompletePendingDeviceAddition.Params; input: BlueCatbirdMlsCompletePendingDeviceAddition.Input; output: BlueCatbirdMlsCompletePendingDeviceAddition.Output }
  "blue.catbird.mls.confirmWelcome": { type: "procedure"; encoding: "application/json"; params: BlueCatbirdMlsConfirmWelcome.Params; input: BlueCatbirdMlsConfirmWelcome.Input; output: BlueCatbirdMlsConfirmWelcome.Output }
  "blue.catbird.mls.createConvo": { type: "procedure"; encoding: "application/json"; params: BlueCatbirdMlsCreateConvo.Params; input: BlueCatbirdMlsCreateConvo.Input; output: BlueCatbirdMlsCreateConvo.Output }
  "blue.catbird.mls.createInvite": { type: "procedure"; encoding: "application/json"; params: BlueCatbirdMlsCreateInvite.Params; input: BlueCatbirdMlsCreateInvite.Input; output: BlueCatbirdMlsCreateInvite.Output }
  "blue.catbird.mls.declineChatRequest": { type: "procedure"; encoding: "application/json"; params: BlueCatbirdMlsDeclineChatRequest.Params; input: BlueCatbirdMlsDeclineChatRequest.Input; output: BlueCatbirdMlsDeclineChatRequest.Output }
  "blue.catbird.mls.deleteDevice": { type: "procedure"; encoding: "application/json"; params: BlueCatbirdMlsDeleteDevice.Params; input: BlueCatbirdMlsDeleteDevice.Input; output: BlueCatbirdMlsDeleteDevice.Output }
  "blue.catbird.mls.demoteAdmin": { type: "procedure"; encoding: "application/json"; params: BlueCatbirdMlsDemoteAdmin.Params; input: BlueCatbirdMlsDemoteAdmin.Input; output: BlueCatbirdMlsDemoteAdmin.Output }
  "blue.catbird.mls.demoteModerator": { type: "procedure"; encoding: "application/json"; params: BlueCatbirdMlsDemoteModerator.Params; input: BlueCatbirdMlsDemoteModerator.Input; output: BlueCatbirdMlsDemoteModerator.Output }
  "blue.catbird.mls.getAdminStats": { type: "query"; encoding: "application/json"; params: BlueCatbirdMlsGetAdminStats.Params; input: undefined; output: BlueCatbirdMlsGetAdminStats.Output }
  "blue.catbird.mls.getBlockStatus": { type: "query"; encoding: "application/json"; params: BlueCatbirdMlsGetBlockStatus.Params; input: undefined; output: BlueCatbirdMlsGetBlockStatus.Output }
  "blue.catbird.mls.getChatRequestSettings": { type: "query"; encoding: "application/json"; params: BlueCatbirdMlsGetChatRequestSettings.Params; input: undefined; output: BlueCatbirdMlsGetChatRequestSettings.Output }
  "blue.catbird.mls.getCommits": { type: "query"; encoding: "application/json"; params: BlueCatbirdMlsGetCommits.Params; input: undefined; output: BlueCatbirdMlsGetCommits.Output }
  "blue.catbird.mls.getConvos": { type: "query"; encoding: "application/json"; params: BlueCatbirdMlsGetConvos.Params; input: undefined; output: BlueCatbirdMlsGetConvos.Output }
  "blue.catbird.mls.getEpoch": { type: "query"; encoding: "application/json"; params: BlueCatbirdMlsGetEpoch.Params; input: undefined; output: BlueCatbirdMlsGetEpoch.Output }
  "blue.catbird.mls.getExpectedConversations": { type: "query"; encoding: "application/json"; params: BlueCatbirdMlsGetExpectedConversations.Params; input: undefined; output: BlueCatbirdMlsGetExpectedConversations.Output }
  "blue.catbird.mls.getGroupInfo": { type: "query"; encoding: "application/json"; params: BlueCatbirdMlsGetGroupInfo.Params; input: undefined; output: BlueCatbirdMlsGetGroupInfo.Output }
  "blue.catbird.mls.getKeyPackageHistory": { type: "query"; encoding: "application/json"; params: BlueCatbirdMlsGetKeyPackageHistory.Params; input: undefined; output: BlueCatbirdMlsGetKeyPackageHistory.Output }
  "blue.catbird.mls.getKeyPackageStats": { type: "query"; encoding: "application/json"; params: BlueCatbirdMlsGetKeyPackageStats.Params; input: undefined; output: BlueCatbirdMlsGetKeyPackageStats.Output }
  "blue.catbird.mls.getKeyPackageStatus": { type: "query"; encoding: "application/json"; params: BlueCatbirdMlsGetKeyPackageStatus.Params; input: undefined; output: BlueCatbirdMlsGetKeyPackageStatus.Output }
  "blue.catbird.mls.getKeyPackages": { type: "query"; encoding: "application/json"; params: BlueCatbirdMlsGetKeyPackages.Params; input: undefined; output: BlueCatbirdMlsGetKeyPackages.Output }
  "blue.catbird.mls.getMessages": { type: "query"; encoding: "application/json"; params: BlueCatbirdMlsGetMessages.Params; input: undefined; output: BlueCatbirdMlsGetMessages.Output }
  "blue.catbird.mls.getOptInStatus": { type: "query"; encoding: "application/json"; params: BlueCatbirdMlsGetOptInStatus.Params; input: undefined; output: BlueCatbirdMlsGetOptInStatus.Output }
  "blue.catbird.mls.getPendingDeviceAdditions": { type: "query"; encoding: "application/json"; params: BlueCatbirdMlsGetPendingDeviceAdditions.Params; input: undefined; output: BlueCatbirdMlsGetPendingDeviceAdditions.Output }
  "blue.catbird.mls.getPolicy": { type: "query"; encoding: "application/json"; params: BlueCatbirdMlsGetPolicy.Params; input: undefined; output: BlueCatbirdMlsGetPolicy.Output }
  "blue.catbird.mls.getReports": { type: "query"; encoding: "application/json"; params: BlueCatbirdMlsGetReports.Params; input: undefined; output: BlueCatbirdMlsGetReports.Output }
  "blue.catbird.mls.getRequestCount": { type: "query"; encoding: "application/json"; params: BlueCatbirdMlsGetRequestCount.Params; input: undefined; output: BlueCatbirdMlsGetRequestCount.Output }
  "blue.catbird.mls.getSubscriptionTicket": { type: "procedure"; encoding: "application/json"; params: BlueCatbirdMlsGetSubscriptionTicket.Params; input: BlueCatbirdMlsGetSubscriptionTicket.Input; output: BlueCatbirdMlsGetSubscriptionTicket.Output }
  "blue.catbird.mls.getWelcome": { type: "query"; encoding: "application/json"; params: BlueCatbirdMlsGetWelcome.Params; input: undefined; output: BlueCatbirdMlsGetWelcome.Output }
  "blue.catbird.mls.groupInfoRefresh": { type: "procedure"; encoding: "application/json"; params: BlueCatbirdMlsGroupInfoRefresh.Params; input: BlueCatbirdMlsGroupInfoRefresh.Input; output: BlueCatbirdMlsGroupInfoRefresh.Output }
  "blue.catbird.mls.handleBlockChange": { type: "procedure"; encoding: "application/json"; params: BlueCatbirdMlsHandleBlockChange.Params; input: BlueCatbirdMlsHandleBlockChange.Input; output: BlueCatbirdMlsHandleBlockChange.Output }
  "blue.catbird.mls.invalidateWelcome": { type: "procedure"; encoding: "application/json"; params: BlueCatbirdMlsInvalidateWelcome.Params; input: BlueCatbirdMlsInvalidateWelcome.Input; output: BlueCatbirdMlsInvalidateWelcome.Output }
  "blue.catbird.mls.leaveConvo": { type: "procedure"; encoding: "application/json"; params: BlueCatbirdMlsLeaveConvo.Params; input: BlueCatbirdMlsLeaveConvo.Input; output: BlueCatbirdMlsLeaveConvo.Output }
  "blue.catbird.mls.listChatRequests": { type: "query"; encoding: "application/json"; params: BlueCatbirdMlsListChatRequests.Params; input: undefined; output: BlueCatbirdMlsListChatRequests.Output }
  "blue.catbird.mls.listDevices": { type: "query"; encoding: "application/json"; params: BlueCatbirdMlsListDevices.Params; input: undefined; output: BlueCatbirdMlsListDevices.Output }
  "blue.catbird.mls.listInvites": { type: "query"; encoding: "application/json"; params: BlueCatbirdMlsListInvites.Params; input: undefined; output: BlueCatbirdMlsListInvites.Output }
  "blue.catbird.mls.optIn": { type: "procedure"; encoding: "application/json"; params: BlueCatbirdMlsOptIn.Params; input: BlueCatbirdMlsOptIn.Input; output: BlueCatbirdMlsOptIn.Output }
  "blue.catbird.mls.optOut": { type: "procedure"; encoding: "application/json"; params: BlueCatbirdMlsOptOut.Params; input: BlueCatbirdMlsOptOut.Input; output: BlueCatbirdMlsOptOut.Output }
  "blue.catbird.mls.processExternalCommit": { type: "procedure"; encoding: "application/json"; params: BlueCatbirdMlsProcessExternalCommit.Params; input: BlueCatbirdMlsProcessExternalCommit.Input; output: BlueCatbirdMlsProcessExternalCommit.Output }
  "blue.catbird.mls.promoteAdmin": { type: "procedure"; encoding: "application/json"; params: BlueCatbirdMlsPromoteAdmin.Params; input: BlueCatbirdMlsPromoteAdmin.Input; output: BlueCatbirdMlsPromoteAdmin.Output }
  "blue.catbird.mls.promoteModerator": { type: "procedure"; encoding: "application/json"; params: BlueCatbirdMlsPromoteModerator.Params; input: BlueCatbirdMlsPromoteModerator.Input; output: BlueCatbirdMlsPromoteModerator.Output }
  "blue.catbird.mls.publishKeyPackage": { type: "procedure"; encoding: "application/json"; params: BlueCatbirdMlsPublishKeyPackage.Params; input: BlueCatbirdMlsPublishKeyPackage.Input; output: BlueCatbirdMlsPublishKeyPackage.Output }
  "blue.catbird.mls.publishKeyPackages": { type: "procedure"; encoding: "application/json"; params: BlueCatbirdMlsPublishKeyPackages.Params; input: BlueCatbirdMlsPublishKeyPackages.Input; output: BlueCatbirdMlsPublishKeyPackages.Output }
  "blue.catbird.mls.readdition": { type: "procedure"; encoding: "application/json"; params: BlueCatbirdMlsReaddition.Params; input: BlueCatbirdMlsReaddition.Input; output: BlueCatbirdMlsReaddition.Output }
  "blue.catbird.mls.registerDevice": { type: "procedure"; encoding: "application/json"; params: BlueCatbirdMlsRegisterDevice.Params; input: BlueCatbirdMlsRegisterDevice.Input; output: BlueCatbirdMlsRegisterDevice.Output }
  "blue.catbird.mls.registerDeviceToken": { type: "procedure"; encoding: "application/json"; params: BlueCatbirdMlsRegisterDeviceToken.Params; input: BlueCatbirdMlsRegisterDeviceToken.Input; output: BlueCatbirdMlsRegisterDeviceToken.Output }
  "blue.catbird.mls.rejoin": { type: "procedure"; encoding: "application/json"; params: BlueCatbirdMlsRejoin.Params; input: BlueCatbirdMlsRejoin.Input; output: BlueCatbirdMlsRejoin.Output }
  "blue.catbird.mls.removeMember": { type: "procedure"; encoding: "application/json"; params: BlueCatbirdMlsRemoveMember.Params; input: BlueCatbirdMlsRemoveMember.Input; output: BlueCatbirdMlsRemoveMember.Output }
  "blue.catbird.mls.reportMember": { type: "procedure"; encoding: "application/json"; params: BlueCatbirdMlsReportMember.Params; input: BlueCatbirdMlsReportMember.Input; output: BlueCatbirdMlsReportMember.Output }
  "blue.catbird.mls.resolveReport": { type: "procedure"; encoding: "application/json"; params: BlueCatbirdMlsResolveReport.Params; input: BlueCatbirdMlsResolveReport.Input; output: BlueCatbirdMlsResolveReport.Output }
  "blue.catbird.mls.revokeInvite": { type: "procedure"; encoding: "application/json"; params: BlueCatbirdMlsRevokeInvite.Params; input: BlueCatbirdMlsRevokeInvite.Input; output: BlueCatbirdMlsRevokeInvite.Output }
  "blue.catbird.mls.sendChatRequest": { type: "procedure"; encoding: "application/json"; params: BlueCatbirdMlsSendChatRequest.Params; input: BlueCatbirdMlsSendChatRequest.Input; output: BlueCatbirdMlsSendChatRequest.Output }
  "blue.catbird.mls.sendMessage": { type: "procedure"; encoding: "application/json"; params: BlueCatbirdMlsSendMessage.Params; input: BlueCatbirdMlsSendMessage.Input; output: BlueCatbirdMlsSendMessage.Output }
  "blue.catbird.mls.streamConvoEvents": { type: "query"; encoding: "text/event-stream"; params: BlueCatbirdMlsStreamConvoEvents.Params; input: undefined; output: BlueCatbirdMlsStreamConvoEvents.Output }
  "blue.catbird.mls.syncKeyPackages": { type: "procedure"; encoding: "application/json"; params: BlueCatbirdMlsSyncKeyPackages.Params; input: BlueCatbirdMlsSyncKeyPackages.Input; output: BlueCatbirdMlsSyncKeyPackages.Output }
  "blue.catbird.mls.unregisterDeviceToken": { type: "procedure"; encoding: "application/json"; params: BlueCatbirdMlsUnregisterDeviceToken.Params; input: BlueCatbirdMlsUnregisterDeviceToken.Input; output: BlueCatbirdMlsUnregisterDeviceToken.Output }
  "blue.catbird.mls.updateChatRequestSettings": { type: "procedure"; encoding: "application/json"; params: BlueCatbirdMlsUpdateChatRequestSettings.Params; input: BlueCatbirdMlsUpdateChatRequestSettings.Input; output: BlueCatbirdMlsUpdateChatRequestSettings.Output }
  "blue.catbird.mls.updateGroupInfo": { type: "procedure"; encoding: "application/json"; params: BlueCatbirdMlsUpdateGroupInfo.Params; input: BlueCatbirdMlsUpdateGroupInfo.Input; output: BlueCatbirdMlsUpdateGroupInfo.Output }
  "blue.catbird.mls.updatePolicy": { type: "procedure"; encoding: "application/json"; params: BlueCatbirdMlsUpdatePolicy.Params; input: BlueCatbirdMlsUpdatePolicy.Input; output: BlueCatbirdMlsUpdatePolicy.Output }
  "blue.catbird.mls.validateDeviceState": { type: "query"; encoding: "application/json"; params: BlueCatbirdMlsValidateDeviceState.Params; input: undefined; output: BlueCatbirdMlsValidateDeviceState.Output }
  "blue.catbird.mls.validateWelcome": { type: "procedure"; encoding: "application/json"; params: BlueCatbirdMlsValidateWelcome.Params; input: BlueCatbirdMlsValidateWelcome.Input; output: BlueCatbirdMlsValidateWelcome.Output }
  "blue.catbird.mls.warnMember": { type: "procedure"; encoding: "application/json"; params: BlueCatbirdMlsWarnMember.Params; input: BlueCatbirdMlsWarnMember.Input; output: BlueCatbirdMlsWarnMember.Output }
}

/** What each subscription takes (its params) and sends (one message: an event). */
export interface Subscriptions {
  "blue.catbird.mls.subscribeConvoEvents": { params: BlueCatbirdMlsSubscribeConvoEvents.Params; message: BlueCatbirdMlsSubscribeConvoEvents.Message }
}
