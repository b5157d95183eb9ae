// Generated from lexicons/blue.catbird.mls.confirmWelcome.json by scripts/gen-lexicon-types.ts. Do not edit.

export type Params = Record<string, never>

export interface Input {
  /** Identifier of the conversation. */
  convoId: string
  /** True when the client joined the group with the Welcome. */
  success: boolean
  /** What went wrong when success is false, for operators. */
  errorDetails?: string
}

export interface Output {
  /** True when the server accepted the report. */
  confirmed: boolean
}
