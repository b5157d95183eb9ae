// Generated from lexicons/blue.catbird.mls.getExpectedConversations.json by scripts/gen-lexicon-types.ts. Do not edit.

export interface Params {
  /** The device to check: its deviceId, its mlsDid (`<user DID>#<deviceId>`, as the iOS client sends it) or its deviceUUID; another user's device is not found (DeviceNotFound). */
  deviceId?: string
}

export interface Output {
  /** One entry per conversation the caller is a current member of. */
  conversations: Array<ExpectedConversation>
}

/** A conversation the caller is a member of, seen from one device. */
export interface ExpectedConversation {
  /** The conversation's MLS group id (hex). */
  convoId: string
  /** Its name (empty when it has none). */
  name: string
  /** How many current members it has. */
  memberCount: number
  /** True when the device should be in the MLS group. */
  shouldBeInGroup: boolean
  /** When something was last sent there. */
  lastActivity?: string
  /** True when the caller asked to be re-added (readdition) and was not yet. */
  needsRejoin?: boolean
  /** True when the device is in the MLS group, as far as the server knows. */
  deviceInGroup?: boolean
}
