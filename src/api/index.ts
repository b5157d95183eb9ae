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

/** The handler of each NSID (all of them: a method added to the lexicons must be handled). */
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
} satisfies { [N in Nsid]: Handler<N> }
