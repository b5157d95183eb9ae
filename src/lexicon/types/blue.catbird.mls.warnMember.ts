// Generated from lexicons/blue.catbird.mls.warnMember.json by scripts/gen-lexicon-types.ts. Do not edit.

export type Params = Record<string, never>

export interface Input {
  /** Identifier of the conversation. */
  convoId: string
  /** The member to warn. */
  memberDid: string
  /** Why. */
  reason: string
  /** When the warning lapses. */
  expiresAt?: string
}

export interface Output {
  /** Identifier of the warning. */
  warningId: string
  /** When it was delivered. */
  deliveredAt: string
}
