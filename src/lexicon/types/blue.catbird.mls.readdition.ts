// Generated from lexicons/blue.catbird.mls.readdition.json by scripts/gen-lexicon-types.ts. Do not edit.

export type Params = Record<string, never>

export interface Input {
  /** Identifier of the conversation. */
  convoId: string
}

export interface Output {
  /** True when the request was sent to the members. */
  requested: boolean
  /** How many members it was sent to. */
  activeMembers?: number
}
