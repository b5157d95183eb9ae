// Generated from lexicons/blue.catbird.mls.confirmWelcome.json by scripts/gen-lexicon-types.ts. Do not edit.

export type Params = Record<string, never>

export interface Input {
  /** Identifier of the conversation. */
  convoId: string
  /** True when the client joined the group with the Welcome. */
  success: boolean
  /** What went wrong when success is false, for operators. */
  errorDetails?: string
  /** The caller's device the Welcome is for (its server id, or its MLS DID `<user DID>#<deviceId>`): a Welcome naming several of the user's devices is delivered to each, and without this the server takes the delivery least taken. */
  deviceId?: string
}

export interface Output {
  /** True when the server accepted the report. */
  confirmed: boolean
}
