// Generated from lexicons/blue.catbird.mls.listChatRequests.json by scripts/gen-lexicon-types.ts. Do not edit.

export interface Params {
  /** Resume after this position: the cursor of the previous page. */
  cursor?: string
  /** Largest number of entries to return. */
  limit?: number
  /** Only requests in this state (pending without it). */
  status?: "pending" | "accepted" | "declined" | "blocked" | "expired"
}

export interface Output {
  /** Chat requests, newest first. */
  requests: Array<ChatRequest>
  /** Present when there is more: pass it as cursor for the next page. */
  cursor?: string
}

/** A chat request sent to the caller. */
export interface ChatRequest {
  /** Identifier of the request. */
  id: string
  /** Who sent it. */
  senderDid: string
  /** Its state. */
  status: "pending" | "accepted" | "declined" | "blocked" | "expired"
  /** When it was sent. */
  createdAt: string
  /** When it expires unanswered. */
  expiresAt: string
  /** The plain-text preview the sender chose to show. */
  previewText?: string
  /** How many encrypted messages are held with it. */
  messageCount?: number
  /** True when it invites to an existing group. */
  isGroupInvite?: boolean
  /** That group. */
  groupId?: string
}
