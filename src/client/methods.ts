import type * as AddMembers from '../lexicon/types/blue.catbird.mls.addMembers.js'
import type * as ConfirmWelcome from '../lexicon/types/blue.catbird.mls.confirmWelcome.js'
import type * as CreateConvo from '../lexicon/types/blue.catbird.mls.createConvo.js'
import type * as GetCommits from '../lexicon/types/blue.catbird.mls.getCommits.js'
import type * as GetConvos from '../lexicon/types/blue.catbird.mls.getConvos.js'
import type * as GetEpoch from '../lexicon/types/blue.catbird.mls.getEpoch.js'
import type * as GetGroupInfo from '../lexicon/types/blue.catbird.mls.getGroupInfo.js'
import type * as GetKeyPackageStats from '../lexicon/types/blue.catbird.mls.getKeyPackageStats.js'
import type * as GetKeyPackages from '../lexicon/types/blue.catbird.mls.getKeyPackages.js'
import type * as GetMessages from '../lexicon/types/blue.catbird.mls.getMessages.js'
import type * as GetWelcome from '../lexicon/types/blue.catbird.mls.getWelcome.js'
import type * as LeaveConvo from '../lexicon/types/blue.catbird.mls.leaveConvo.js'
import type * as ProcessExternalCommit from '../lexicon/types/blue.catbird.mls.processExternalCommit.js'
import type * as PublishKeyPackage from '../lexicon/types/blue.catbird.mls.publishKeyPackage.js'
import type * as SendMessage from '../lexicon/types/blue.catbird.mls.sendMessage.js'
import type * as UpdateGroupInfo from '../lexicon/types/blue.catbird.mls.updateGroupInfo.js'

export type {
  AddMembers,
  ConfirmWelcome,
  CreateConvo,
  GetCommits,
  GetConvos,
  GetEpoch,
  GetGroupInfo,
  GetKeyPackageStats,
  GetKeyPackages,
  GetMessages,
  GetWelcome,
  LeaveConvo,
  ProcessExternalCommit,
  PublishKeyPackage,
  SendMessage,
  UpdateGroupInfo,
}

/** The lexicon queries (GET), by NSID. streamConvoEvents is a subscription and not here. */
export interface Queries {
  'blue.catbird.mls.getCommits': { params: GetCommits.Params; output: GetCommits.Output }
  'blue.catbird.mls.getConvos': { params: GetConvos.Params; output: GetConvos.Output }
  'blue.catbird.mls.getEpoch': { params: GetEpoch.Params; output: GetEpoch.Output }
  'blue.catbird.mls.getGroupInfo': { params: GetGroupInfo.Params; output: GetGroupInfo.Output }
  'blue.catbird.mls.getKeyPackageStats': {
    params: GetKeyPackageStats.Params
    output: GetKeyPackageStats.Output
  }
  'blue.catbird.mls.getKeyPackages': { params: GetKeyPackages.Params; output: GetKeyPackages.Output }
  'blue.catbird.mls.getMessages': { params: GetMessages.Params; output: GetMessages.Output }
  'blue.catbird.mls.getWelcome': { params: GetWelcome.Params; output: GetWelcome.Output }
}

/** The lexicon procedures (POST), by NSID. */
export interface Procedures {
  'blue.catbird.mls.addMembers': { input: AddMembers.Input; output: AddMembers.Output }
  'blue.catbird.mls.confirmWelcome': { input: ConfirmWelcome.Input; output: ConfirmWelcome.Output }
  'blue.catbird.mls.createConvo': { input: CreateConvo.Input; output: CreateConvo.Output }
  'blue.catbird.mls.leaveConvo': { input: LeaveConvo.Input; output: LeaveConvo.Output }
  'blue.catbird.mls.processExternalCommit': {
    input: ProcessExternalCommit.Input
    output: ProcessExternalCommit.Output
  }
  'blue.catbird.mls.publishKeyPackage': {
    input: PublishKeyPackage.Input
    output: PublishKeyPackage.Output
  }
  'blue.catbird.mls.sendMessage': { input: SendMessage.Input; output: SendMessage.Output }
  'blue.catbird.mls.updateGroupInfo': { input: UpdateGroupInfo.Input; output: UpdateGroupInfo.Output }
}

export type QueryNsid = keyof Queries
export type ProcedureNsid = keyof Procedures

/** Procedures whose input declares `idempotencyKey`: the server replays their stored result. */
export type KeyedProcedureNsid = {
  [N in ProcedureNsid]: 'idempotencyKey' extends keyof Procedures[N]['input'] ? N : never
}[ProcedureNsid]

// A Record, so a keyed procedure added to the lexicons cannot be left out here.
const keyedProcedures: Record<KeyedProcedureNsid, true> = {
  'blue.catbird.mls.addMembers': true,
  'blue.catbird.mls.createConvo': true,
  'blue.catbird.mls.processExternalCommit': true,
  'blue.catbird.mls.publishKeyPackage': true,
  'blue.catbird.mls.sendMessage': true,
}

export const isKeyedProcedure = (nsid: ProcedureNsid): nsid is KeyedProcedureNsid =>
  Object.hasOwn(keyedProcedures, nsid)
