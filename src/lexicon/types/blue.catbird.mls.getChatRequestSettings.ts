// Generated from lexicons/blue.catbird.mls.getChatRequestSettings.json by scripts/gen-lexicon-types.ts. Do not edit.

export type Params = Record<string, never>

export interface Output {
  /** Users who follow the caller skip the mailbox. */
  allowFollowersBypass: boolean
  /** Users the caller follows skip the mailbox. */
  allowFollowingBypass: boolean
  /** Pending requests expire after this many days. */
  autoExpireDays: number
}
