// Generated from lexicons/blue.catbird.mls.checkBlocks.json by scripts/gen-lexicon-types.ts. Do not edit.

export interface Params {
  /** The users to check, pairwise (at most 100: more is refused with TooManyDids). */
  dids: Array<string>
}

export interface Output {
  /** Every block between two of the given DIDs. */
  blocks: Array<BlockRelationship>
  /** When the server read the block records. */
  checkedAt: string
}

/** One user blocking another on Bluesky. */
export interface BlockRelationship {
  /** The user who made the block. */
  blockerDid: string
  /** The user blocked. */
  blockedDid: string
  /** When the block record was made. */
  createdAt: string
  /** AT-URI of the block record. */
  blockUri?: string
}
