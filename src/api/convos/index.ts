/**
 * Conversations and their membership: creating a group's conversation,
 * listing them, the membership changes (each with the MLS commit that makes
 * it), epochs and commits, the GroupInfo a member rejoins from, and what a
 * member asks of the others (a fresh GroupInfo, to be added again).
 * Services: convos, members, commits, membership, groupInfo, rejoin, admission, convoEvents.
 */
import { NSID } from '../../lexicon/types/index.js'
import addMembers from './addMembers.js'
import createConvo from './createConvo.js'
import getCommits from './getCommits.js'
import getConvos from './getConvos.js'
import getEpoch from './getEpoch.js'
import getGroupInfo from './getGroupInfo.js'
import groupInfoRefresh from './groupInfoRefresh.js'
import leaveConvo from './leaveConvo.js'
import processExternalCommit from './processExternalCommit.js'
import readdition from './readdition.js'
import updateGroupInfo from './updateGroupInfo.js'

export const convoHandlers = {
  [NSID.addMembers]: addMembers,
  [NSID.createConvo]: createConvo,
  [NSID.getCommits]: getCommits,
  [NSID.getConvos]: getConvos,
  [NSID.getEpoch]: getEpoch,
  [NSID.getGroupInfo]: getGroupInfo,
  [NSID.groupInfoRefresh]: groupInfoRefresh,
  [NSID.leaveConvo]: leaveConvo,
  [NSID.processExternalCommit]: processExternalCommit,
  [NSID.readdition]: readdition,
  [NSID.updateGroupInfo]: updateGroupInfo,
}
