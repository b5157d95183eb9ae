// Generated from lexicons/blue.catbird.mls.getEpoch.json by scripts/gen-lexicon-types.ts. Do not edit.

export interface Params {
  /** Identifier of the conversation. */
  convoId: string
}

export interface Output {
  /** Identifier of the conversation. */
  convoId: string
  /** The epoch the conversation is at now. */
  currentEpoch: number
}
