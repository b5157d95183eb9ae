// Generated from lexicons/blue.catbird.mls.removeMember.json by scripts/gen-lexicon-types.ts. Do not edit.

export type Params = Record<string, never>

export interface Input {
  /** Identifier of the conversation. */
  convoId: string
  /** The member to remove. */
  targetDid: string
  /** Client-chosen key, generated once per removal and reused on every retry, so a retried request returns the original result instead of removing twice. */
  idempotencyKey: string
  /** Why, for the record. */
  reason?: string
  /** The MLS commit (an MLSMessage carrying a PublicMessage) removing every leaf of the member and nothing else, base64-encoded. Required. */
  commit?: string
}

export interface Output {
  /** True when the member is removed. */
  ok: boolean
  /** The conversation epoch after the removal. */
  epochHint?: number
}
