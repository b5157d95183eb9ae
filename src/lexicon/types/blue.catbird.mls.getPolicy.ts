// Generated from lexicons/blue.catbird.mls.getPolicy.json by scripts/gen-lexicon-types.ts. Do not edit.
import type * as BlueCatbirdMlsUpdatePolicy from './blue.catbird.mls.updatePolicy.js'

export interface Params {
  /** Identifier of the conversation. */
  convoId: string
}

export interface Output {
  /** The policy. */
  policy: BlueCatbirdMlsUpdatePolicy.PolicyView
}
