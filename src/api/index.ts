import type { XrpcHandlers } from '../xrpc/types.js'
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

/** The handler of each NSID; a lexicon method missing here answers 501. */
export const handlers = {
  'blue.catbird.mls.addMembers': addMembers,
  'blue.catbird.mls.confirmWelcome': confirmWelcome,
  'blue.catbird.mls.createConvo': createConvo,
  'blue.catbird.mls.getCommits': getCommits,
  'blue.catbird.mls.getConvos': getConvos,
  'blue.catbird.mls.getEpoch': getEpoch,
  'blue.catbird.mls.getGroupInfo': getGroupInfo,
  'blue.catbird.mls.getKeyPackages': getKeyPackages,
  'blue.catbird.mls.getKeyPackageStats': getKeyPackageStats,
  'blue.catbird.mls.getMessages': getMessages,
  'blue.catbird.mls.getWelcome': getWelcome,
  'blue.catbird.mls.leaveConvo': leaveConvo,
  'blue.catbird.mls.processExternalCommit': processExternalCommit,
  'blue.catbird.mls.publishKeyPackage': publishKeyPackage,
  'blue.catbird.mls.sendMessage': sendMessage,
  'blue.catbird.mls.streamConvoEvents': streamConvoEvents,
  'blue.catbird.mls.updateGroupInfo': updateGroupInfo,
} as XrpcHandlers
