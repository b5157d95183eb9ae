// Generated from lexicons/blue.catbird.mls.rejoin.json by scripts/gen-lexicon-types.ts. Do not edit.

export type Params = Record<string, never>

export interface Input {
  /** Identifier of the conversation. */
  convoId: string
  /** A fresh MLS KeyPackage of the device, base64-encoded. */
  keyPackage: string
  /** Why, for operators. */
  reason?: string
}

export interface Output {
  /** Identifier of the request. */
  requestId: string
  /** True while no member has added the caller back. */
  pending: boolean
  /** When it was carried out, if it already was. */
  approvedAt?: string
}
