// Generated from lexicons/blue.catbird.mls.demoteAdmin.json by scripts/gen-lexicon-types.ts. Do not edit.

export type Params = Record<string, never>

export interface Input {
  /** Identifier of the conversation. */
  convoId: string
  /** The admin to demote (the caller, to step down). */
  targetDid: string
}

export interface Output {
  /** True when the target is no longer an admin. */
  ok: boolean
}
