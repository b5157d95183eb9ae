// Generated from lexicons/blue.catbird.mls.validateWelcome.json by scripts/gen-lexicon-types.ts. Do not edit.

export type Params = Record<string, never>

export interface Input {
  /** The MLS Welcome. */
  welcomeMessage: Uint8Array
}

export interface Output {
  /** True when the Welcome names a key package of the caller that is usable. */
  valid: boolean
  /** The key package it names, by its hash (hex). */
  keyPackageHash: string
  /** The caller. */
  recipientDid?: string
  /** The MLS group id (hex), when the server knows the Welcome’s group. */
  groupId?: string
  /** True when the key package is reserved for this Welcome. */
  reserved?: boolean
  /** Until when. */
  reservedUntil?: string
}
