// Generated from lexicons/blue.catbird.mls.getConvos.json by scripts/gen-lexicon-types.ts. Do not edit.
import type * as BlueCatbirdMlsDefs from './blue.catbird.mls.defs.js'

export interface Params {
  /** Largest number of conversations to return. */
  limit?: number
  /** Cursor from the previous page. */
  cursor?: string
}

export interface Output {
  /** One page of conversations. */
  conversations: Array<BlueCatbirdMlsDefs.ConvoView>
  /** Present when more conversations follow; pass it back to get them. */
  cursor?: string
}
