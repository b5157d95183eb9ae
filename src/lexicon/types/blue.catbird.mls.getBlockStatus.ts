// Generated from lexicons/blue.catbird.mls.getBlockStatus.json by scripts/gen-lexicon-types.ts. Do not edit.
import type * as BlueCatbirdMlsCheckBlocks from './blue.catbird.mls.checkBlocks.js'

export interface Params {
  /** Identifier of the conversation. */
  convoId: string
}

export interface Output {
  /** Identifier of the conversation. */
  convoId: string
  /** True when some member blocks another. */
  hasConflicts: boolean
  /** Every block between two current members. */
  blocks: Array<BlueCatbirdMlsCheckBlocks.BlockRelationship>
  /** When the server read the block records. */
  checkedAt: string
  /** How many members were checked. */
  memberCount?: number
}
