// Generated from lexicons/blue.catbird.mls.getMessages.json by scripts/gen-lexicon-types.ts. Do not edit.
import type * as BlueCatbirdMlsDefs from './blue.catbird.mls.defs.js'

export interface Params {
  /** Identifier of the conversation. */
  convoId: string
  /** Largest number of messages to return. */
  limit?: number
  /** Return messages that come after this message id (the cursor of a previous page). */
  sinceMessage?: string
}

export interface Output {
  /** Messages in sequence order. */
  messages: Array<BlueCatbirdMlsDefs.MessageView>
  /** Present when more messages follow: the id to pass as sinceMessage. */
  cursor?: string
}
