// Generated from lexicons/blue.catbird.mls.getPendingDeviceAdditions.json by scripts/gen-lexicon-types.ts. Do not edit.

export interface Params {
  /** Only these conversations. */
  convoIds?: Array<string>
  /** Largest number of entries to return. */
  limit?: number
}

export interface Output {
  /** Pending additions, oldest first. */
  pendingAdditions: Array<PendingDeviceAddition>
}

/** A new device of a member, to be added to one conversation. */
export interface PendingDeviceAddition {
  /** Identifier of the pending addition (for claim and complete). */
  id: string
  /** Identifier of the conversation. */
  convoId: string
  /** The user whose device it is. */
  userDid: string
  /** The new device. */
  deviceId: string
  /** Its name, as its user gave it. */
  deviceName?: string
  /** The identity of the new device: `<user DID>#<deviceId>`. */
  deviceCredentialDid: string
  /** pending, or in_progress while a member holds a claim. */
  status: "pending" | "in_progress" | (string & {})
  /** The member holding the claim. */
  claimedBy?: string
  /** When the device was registered. */
  createdAt: string
}
