// Generated from lexicons/blue.catbird.mls.promoteAdmin.json by scripts/gen-lexicon-types.ts. Do not edit.

export type Params = Record<string, never>

export interface Input {
  /** Identifier of the conversation. */
  convoId: string
  /** The member to promote. */
  targetDid: string
}

export interface Output {
  /** True when the target is an admin. */
  ok: boolean
  /** When. */
  promotedAt: string
}
