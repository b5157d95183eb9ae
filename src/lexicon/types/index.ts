// Generated from lexicons/ by scripts/gen-lexicon-types.ts. Do not edit.
import type * as BlueCatbirdMlsAddMembers from './blue.catbird.mls.addMembers.js'
import type * as BlueCatbirdMlsConfirmWelcome from './blue.catbird.mls.confirmWelcome.js'
import type * as BlueCatbirdMlsCreateConvo from './blue.catbird.mls.createConvo.js'
import type * as BlueCatbirdMlsGetCommits from './blue.catbird.mls.getCommits.js'
import type * as BlueCatbirdMlsGetConvos from './blue.catbird.mls.getConvos.js'
import type * as BlueCatbirdMlsGetEpoch from './blue.catbird.mls.getEpoch.js'
import type * as BlueCatbirdMlsGetGroupInfo from './blue.catbird.mls.getGroupInfo.js'
import type * as BlueCatbirdMlsGetKeyPackageStats from './blue.catbird.mls.getKeyPackageStats.js'
import type * as BlueCatbirdMlsGetKeyPackages from './blue.catbird.mls.getKeyPackages.js'
import type * as BlueCatbirdMlsGetMessages from './blue.catbird.mls.getMessages.js'
import type * as BlueCatbirdMlsGetWelcome from './blue.catbird.mls.getWelcome.js'
import type * as BlueCatbirdMlsLeaveConvo from './blue.catbird.mls.leaveConvo.js'
import type * as BlueCatbirdMlsProcessExternalCommit from './blue.catbird.mls.processExternalCommit.js'
import type * as BlueCatbirdMlsPublishKeyPackage from './blue.catbird.mls.publishKeyPackage.js'
import type * as BlueCatbirdMlsSendMessage from './blue.catbird.mls.sendMessage.js'
import type * as BlueCatbirdMlsStreamConvoEvents from './blue.catbird.mls.streamConvoEvents.js'
import type * as BlueCatbirdMlsUpdateGroupInfo from './blue.catbird.mls.updateGroupInfo.js'

/** The NSID of each XRPC method, by its name. */
export const NSID = {
  addMembers: "blue.catbird.mls.addMembers",
  confirmWelcome: "blue.catbird.mls.confirmWelcome",
  createConvo: "blue.catbird.mls.createConvo",
  getCommits: "blue.catbird.mls.getCommits",
  getConvos: "blue.catbird.mls.getConvos",
  getEpoch: "blue.catbird.mls.getEpoch",
  getGroupInfo: "blue.catbird.mls.getGroupInfo",
  getKeyPackageStats: "blue.catbird.mls.getKeyPackageStats",
  getKeyPackages: "blue.catbird.mls.getKeyPackages",
  getMessages: "blue.catbird.mls.getMessages",
  getWelcome: "blue.catbird.mls.getWelcome",
  leaveConvo: "blue.catbird.mls.leaveConvo",
  processExternalCommit: "blue.catbird.mls.processExternalCommit",
  publishKeyPackage: "blue.catbird.mls.publishKeyPackage",
  sendMessage: "blue.catbird.mls.sendMessage",
  streamConvoEvents: "blue.catbird.mls.streamConvoEvents",
  updateGroupInfo: "blue.catbird.mls.updateGroupInfo",
} as const

export type Nsid = (typeof NSID)[keyof typeof NSID]

/**
 * What each method takes and gives. `encoding` is its output's: an event
 * stream's (`text/event-stream`) `output` is one event.
 */
export interface Methods {
  "blue.catbird.mls.addMembers": { type: "procedure"; encoding: "application/json"; params: BlueCatbirdMlsAddMembers.Params; input: BlueCatbirdMlsAddMembers.Input; output: BlueCatbirdMlsAddMembers.Output }
  "blue.catbird.mls.confirmWelcome": { type: "procedure"; encoding: "application/json"; params: BlueCatbirdMlsConfirmWelcome.Params; input: BlueCatbirdMlsConfirmWelcome.Input; output: BlueCatbirdMlsConfirmWelcome.Output }
  "blue.catbird.mls.createConvo": { type: "procedure"; encoding: "application/json"; params: BlueCatbirdMlsCreateConvo.Params; input: BlueCatbirdMlsCreateConvo.Input; output: BlueCatbirdMlsCreateConvo.Output }
  "blue.catbird.mls.getCommits": { type: "query"; encoding: "application/json"; params: BlueCatbirdMlsGetCommits.Params; input: undefined; output: BlueCatbirdMlsGetCommits.Output }
  "blue.catbird.mls.getConvos": { type: "query"; encoding: "application/json"; params: BlueCatbirdMlsGetConvos.Params; input: undefined; output: BlueCatbirdMlsGetConvos.Output }
  "blue.catbird.mls.getEpoch": { type: "query"; encoding: "application/json"; params: BlueCatbirdMlsGetEpoch.Params; input: undefined; output: BlueCatbirdMlsGetEpoch.Output }
  "blue.catbird.mls.getGroupInfo": { type: "query"; encoding: "application/json"; params: BlueCatbirdMlsGetGroupInfo.Params; input: undefined; output: BlueCatbirdMlsGetGroupInfo.Output }
  "blue.catbird.mls.getKeyPackageStats": { type: "query"; encoding: "application/json"; params: BlueCatbirdMlsGetKeyPackageStats.Params; input: undefined; output: BlueCatbirdMlsGetKeyPackageStats.Output }
  "blue.catbird.mls.getKeyPackages": { type: "query"; encoding: "application/json"; params: BlueCatbirdMlsGetKeyPackages.Params; input: undefined; output: BlueCatbirdMlsGetKeyPackages.Output }
  "blue.catbird.mls.getMessages": { type: "query"; encoding: "application/json"; params: BlueCatbirdMlsGetMessages.Params; input: undefined; output: BlueCatbirdMlsGetMessages.Output }
  "blue.catbird.mls.getWelcome": { type: "query"; encoding: "application/json"; params: BlueCatbirdMlsGetWelcome.Params; input: undefined; output: BlueCatbirdMlsGetWelcome.Output }
  "blue.catbird.mls.leaveConvo": { type: "procedure"; encoding: "application/json"; params: BlueCatbirdMlsLeaveConvo.Params; input: BlueCatbirdMlsLeaveConvo.Input; output: BlueCatbirdMlsLeaveConvo.Output }
  "blue.catbird.mls.processExternalCommit": { type: "procedure"; encoding: "application/json"; params: BlueCatbirdMlsProcessExternalCommit.Params; input: BlueCatbirdMlsProcessExternalCommit.Input; output: BlueCatbirdMlsProcessExternalCommit.Output }
  "blue.catbird.mls.publishKeyPackage": { type: "procedure"; encoding: "application/json"; params: BlueCatbirdMlsPublishKeyPackage.Params; input: BlueCatbirdMlsPublishKeyPackage.Input; output: BlueCatbirdMlsPublishKeyPackage.Output }
  "blue.catbird.mls.sendMessage": { type: "procedure"; encoding: "application/json"; params: BlueCatbirdMlsSendMessage.Params; input: BlueCatbirdMlsSendMessage.Input; output: BlueCatbirdMlsSendMessage.Output }
  "blue.catbird.mls.streamConvoEvents": { type: "query"; encoding: "text/event-stream"; params: BlueCatbirdMlsStreamConvoEvents.Params; input: undefined; output: BlueCatbirdMlsStreamConvoEvents.Output }
  "blue.catbird.mls.updateGroupInfo": { type: "procedure"; encoding: "application/json"; params: BlueCatbirdMlsUpdateGroupInfo.Params; input: BlueCatbirdMlsUpdateGroupInfo.Input; output: BlueCatbirdMlsUpdateGroupInfo.Output }
}
