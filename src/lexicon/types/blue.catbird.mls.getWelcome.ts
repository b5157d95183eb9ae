// Generated from lexicons/blue.catbird.mls.getWelcome.json by scripts/gen-lexicon-types.ts. Do not edit.

export interface Params {
  /** Identifier of the conversation. */
  convoId: string
}

export interface Output {
  /** Identifier of the conversation. */
  convoId: string
  /** The MLS Welcome message, base64-encoded. */
  welcome: string
}
