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
import { NSID, type Methods, type Nsid } from '../lexicon/types/index.js'

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

/** The lexicon queries (GET) that answer JSON, by NSID. streamConvoEvents is an event stream and not here. */
export type QueryNsid = {
  [N in Nsid]: Methods[N] extends { type: 'query'; encoding: 'application/json' } ? N : never
}[Nsid]
/** The lexicon procedures (POST) that take a JSON input, by NSID (optOut takes none and is not here). */
export type ProcedureNsid = {
  [N in Nsid]: Methods[N] extends { type: 'procedure'; input: object } ? N : never
}[Nsid]

export type Queries = { [N in QueryNsid]: { params: Methods[N]['params']; output: Methods[N]['output'] } }
export type Procedures = { [N in ProcedureNsid]: { input: Methods[N]['input']; output: Methods[N]['output'] } }

/** Procedures whose input declares `idempotencyKey`: the server replays their stored result. */
export type KeyedProcedureNsid = {
  [N in ProcedureNsid]: 'idempotencyKey' extends keyof Procedures[N]['input'] ? N : never
}[ProcedureNsid]

// A Record, so a keyed procedure added to the lexicons cannot be left out here.
const keyedProcedures: Record<KeyedProcedureNsid, true> = {
  [NSID.addMembers]: true,
  [NSID.createConvo]: true,
  [NSID.processExternalCommit]: true,
  [NSID.publishKeyPackage]: true,
  [NSID.removeMember]: true,
  [NSID.sendMessage]: true,
}

export const isKeyedProcedure = (nsid: ProcedureNsid): nsid is KeyedProcedureNsid =>
  Object.hasOwn(keyedProcedures, nsid)
