// Generated from lexicons/blue.catbird.mls.updateGroupInfo.json by scripts/gen-lexicon-types.ts. Do not edit.

export type Params = Record<string, never>

export interface Input {
  /** Identifier of the conversation. */
  convoId: string
  /** GroupInfo (RFC 9420 §12.4.3), base64-encoded: an MLSMessage carrying one, or the bare struct. */
  groupInfo: string
  /** The epoch the GroupInfo describes; it must be the one in the GroupInfo and the conversation's current epoch. */
  epoch: number
}

export interface Output {
  /** True when it was stored; false when this very GroupInfo was stored already. */
  updated: boolean
}
