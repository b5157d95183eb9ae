// Generated from lexicons/blue.catbird.mls.invalidateWelcome.json by scripts/gen-lexicon-types.ts. Do not edit.

export type Params = Record<string, never>

export interface Input {
  /** Identifier of the conversation. */
  convoId: string
  /** Why the Welcome cannot be processed (for example NoMatchingKeyPackage). */
  reason: string
}

export interface Output {
  /** True when a Welcome was marked unusable. */
  invalidated: boolean
  /** The Welcome that was. */
  welcomeId?: string
}
