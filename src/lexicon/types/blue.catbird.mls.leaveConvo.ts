// Generated from lexicons/blue.catbird.mls.leaveConvo.json by scripts/gen-lexicon-types.ts. Do not edit.

export type Params = Record<string, never>

export interface Input {
  /** Identifier of the conversation. */
  convoId: string
  /** Member to remove; the caller when omitted. */
  targetDid?: string
  /** MLS Commit message for this change, base64-encoded. */
  commit?: string
  /** The conversation epoch the commit was built on. When given with a commit, the server refuses the commit with EpochMismatch if the conversation has moved on, so two racing commits cannot both advance the epoch. */
  epoch?: number
}

export interface Output {
  /** True when the request was applied (also when the member had already left). */
  success: boolean
  /** The conversation epoch after the change. */
  newEpoch: number
}
