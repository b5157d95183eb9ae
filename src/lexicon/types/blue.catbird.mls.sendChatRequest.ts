// Generated from lexicons/blue.catbird.mls.sendChatRequest.json by scripts/gen-lexicon-types.ts. Do not edit.

export type Params = Record<string, never>

export interface Input {
  /** The user asked. */
  recipientDid: string
  /** A plain-text preview shown with the request (not encrypted). */
  previewText?: string
  /** Encrypted messages held until the request is accepted, at most 5. */
  heldMessages?: Array<HeldMessage>
  /** True when it invites to an existing group. */
  isGroupInvite?: boolean
  /** That group. */
  groupId?: string
}

export interface Output {
  /** Identifier of the request. */
  requestId: string
  /** pending, or bypassed when a conversation was started at once. */
  status: "pending" | "bypassed"
  /** When it was sent. */
  createdAt: string
  /** When it expires unanswered. */
  expiresAt: string
  /** The conversation, when it was started at once. */
  convoId?: string
}

/** An encrypted message held with a chat request. */
export interface HeldMessage {
  /** The encrypted message. */
  ciphertext: Uint8Array
  /** Its padded size. */
  paddedSize: number
  /** An ephemeral public key for the recipient, if any. */
  ephPubKey?: Uint8Array
}
