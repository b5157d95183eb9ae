/**
 * Conversations and their membership: creating a group's conversation,
 * listing them, the membership changes (each with the MLS commit that makes
 * it), epochs and commits, and the GroupInfo a member rejoins from.
 * Services: convos, members, commits, membership, groupInfo, rejoin, admission.
 */
import { NSID } from '../../lexicon/types/index.js'
import addMembers from './addMembers.js'
import createConvo from './createConvo.js'
import getCommits from './getCommits.js'
import getConvos from './getConvos.js'
import getEpoch from './getEpoch.js'
import getGroupInfo from './getGroupInfo.js'
import leaveConvo from './leaveConvo.js'
import processExternalCommit from './processExternalCommit.js'
import updateGroupInfo from './updateGroupInfo.js'

export const convoHandlers = {
  [NSID.addMembers]: addMembers,
  [NSID.createConvo]: createConvo,
  [NSID.getCommits]: getCommits,
  [NSID.getConvos]: getConvos,
  [NSID.getEpoch]: getEpoch,
  [NSID.getGroupInfo]: getGroupInfo,
  [NSID.leaveConvo]: leaveConvo,
  [NSID.processExternalCommit]: processExternalCommit,
  [NSID.updateGroupInfo]: updateGroupInfo,
}
