// Generated from lexicons/blue.catbird.mls.handleBlockChange.json by scripts/gen-lexicon-types.ts. Do not edit.

export type Params = Record<string, never>

export interface Input {
  /** The user who blocked or unblocked (the caller). */
  blockerDid: string
  /** The user blocked or unblocked. */
  blockedDid: string
  /** created or removed. */
  action: "created" | "removed" | (string & {})
  /** AT-URI of the block record. */
  blockUri?: string
}

export interface Output {
  /** The conversations both users are current members of. */
  affectedConvos: Array<AffectedConvo>
}

/** A conversation both users of a block share. */
export interface AffectedConvo {
  /** Identifier of the conversation. */
  convoId: string
  /** What was done: admin_notified, auto_removed, requires_resolution or no_action. */
  action: "admin_notified" | "auto_removed" | "requires_resolution" | "no_action" | (string & {})
  /** True when the conversation's admins were told. */
  adminNotified: boolean
  /** When they were told. */
  notificationSentAt?: string
}
