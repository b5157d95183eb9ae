// Generated from lexicons/blue.catbird.mls.optOut.json by scripts/gen-lexicon-types.ts. Do not edit.

export type Params = Record<string, never>

export type Input = undefined

export interface Output {
  /** True when the caller is no longer opted in. */
  success: boolean
}
