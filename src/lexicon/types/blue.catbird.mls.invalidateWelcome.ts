// Generated from lexicons/blue.catbird.mls.invalidateWelcome.json by scripts/gen-lexicon-types.ts. Do not edit.

export type Params = Record<string, never>

export interface Input {
  /** Identifier of the conversation. */
  convoId: string
  /** Why the Welcome cannot be processed (for example NoMatchingKeyPackage). */
  reason: string
  /** The caller's device the Welcome is for (its server id, or its MLS DID `<user DID>#<deviceId>`): a Welcome naming several of the user's devices is delivered to each, and without this the server takes the delivery least taken. */
  deviceId?: string
}

export interface Output {
  /** True when a Welcome was marked unusable. */
  invalidated: boolean
  /** The Welcome that was. */
  welcomeId?: string
}
