// Generated from lexicons/blue.catbird.mls.blockChatSender.json by scripts/gen-lexicon-types.ts. Do not edit.

export type Params = Record<string, never>

export interface Input {
  /** The sender to block. */
  senderDid: string
  /** The request that prompted the block, if any. */
  requestId?: string
  /** Why the sender is blocked. */
  reason?: "spam" | "harassment" | "inappropriate" | "other"
}

export interface Output {
  /** True when the block is recorded. */
  success: boolean
  /** How many of the sender's pending requests were declined. */
  blockedCount: number
}
