/**
 * Bluesky blocks among users and among a conversation's members, and the
 * blocks users report making or lifting. (createConvo and addMembers refuse
 * adds between users who block each other: api/convos.)
 * Services: blocks.
 */
import { NSID } from '../../lexicon/types/index.js'
import checkBlocks from './checkBlocks.js'
import getBlockStatus from './getBlockStatus.js'
import handleBlockChange from './handleBlockChange.js'

export const blockHandlers = {
  [NSID.checkBlocks]: checkBlocks,
  [NSID.getBlockStatus]: getBlockStatus,
  [NSID.handleBlockChange]: handleBlockChange,
}
