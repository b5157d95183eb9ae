// Generated from lexicons/blue.catbird.mls.addMembers.json by scripts/gen-lexicon-types.ts. Do not edit.

export type Params = Record<string, never>

export interface Input {
  /** Identifier of the conversation. */
  convoId: string
  /** Client-chosen key, generated once per logical write and reused on every retry, so a retried request returns the original result instead of writing twice. */
  idempotencyKey?: string
  /** DIDs to add to the conversation. */
  didList: Array<string>
  /** MLS Commit message for this change, base64-encoded. */
  commit?: string
  /** MLS Welcome message, base64-encoded; one message carries the secrets for every member being added. */
  welcomeMessage?: string
  /** The conversation epoch the commit was built on. When given with a commit, the server refuses the commit with EpochMismatch if the conversation has moved on, so two racing commits cannot both advance the epoch. */
  epoch?: number
}

export interface Output {
  /** True when the request was applied (also when every DID was already a member). */
  success: boolean
  /** The conversation epoch after the change. */
  newEpoch: number
}
