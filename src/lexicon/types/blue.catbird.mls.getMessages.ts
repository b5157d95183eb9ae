// Generated from lexicons/blue.catbird.mls.getMessages.json by scripts/gen-lexicon-types.ts. Do not edit.
import type * as BlueCatbirdMlsDefs from './blue.catbird.mls.defs.js'

export interface Params {
  /** Identifier of the conversation. */
  convoId: string
  /** Largest number of messages to return. */
  limit?: number
  /** Return messages that come after this message id (the cursor of a previous page). */
  sinceMessage?: string
  /** Only messages whose seq is greater than this (the client-era cursor; the seed-era one is sinceMessage). With both, the later position wins. */
  sinceSeq?: number
}

export interface Output {
  /** Messages in sequence order. */
  messages: Array<BlueCatbirdMlsDefs.MessageView>
  /** Present when more messages follow: the id to pass as sinceMessage. */
  cursor?: string
  /** The seq of the last message returned: pass it as sinceSeq for the next page. */
  lastSeq?: number
  /** Whether seq numbers are missing among the messages returned. */
  gapInfo?: GapInfo
}

/** Missing seq numbers in a page of messages. */
export interface GapInfo {
  /** True when some seq number after the starting point, up to the last returned, is missing (seqs have no gaps: only a deleted message leaves one). */
  hasGaps: boolean
  /** The missing seq numbers. */
  missingSeqs: Array<number>
  /** How many messages were returned. */
  totalMessages: number
}
