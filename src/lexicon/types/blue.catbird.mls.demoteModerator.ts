// Generated from lexicons/blue.catbird.mls.demoteModerator.json by scripts/gen-lexicon-types.ts. Do not edit.

export type Params = Record<string, never>

export interface Input {
  /** Identifier of the conversation. */
  convoId: string
  /** The moderator to demote. */
  targetDid: string
}

export interface Output {
  /** True when the target is no longer a moderator. */
  ok: boolean
}
