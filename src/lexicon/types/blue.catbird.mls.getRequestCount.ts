// Generated from lexicons/blue.catbird.mls.getRequestCount.json by scripts/gen-lexicon-types.ts. Do not edit.

export type Params = Record<string, never>

export interface Output {
  /** Pending chat requests. */
  pendingCount: number
  /** When the newest of them came. */
  lastRequestAt?: string
}
