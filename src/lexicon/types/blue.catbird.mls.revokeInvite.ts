// Generated from lexicons/blue.catbird.mls.revokeInvite.json by scripts/gen-lexicon-types.ts. Do not edit.

export type Params = Record<string, never>

export interface Input {
  /** The invite. */
  inviteId: string
}

export interface Output {
  /** True when it is revoked. */
  success: boolean
}
