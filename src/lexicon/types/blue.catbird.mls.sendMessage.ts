// Generated from lexicons/blue.catbird.mls.sendMessage.json by scripts/gen-lexicon-types.ts. Do not edit.

export type Params = Record<string, never>

export interface Input {
  /** Identifier of the conversation. */
  convoId: string
  /** Client-chosen key, generated once per logical write and reused on every retry, so a retried request returns the original result instead of writing twice. */
  idempotencyKey?: string
  /** The MLSMessage (RFC 9420 §6) as the sender made it: a PrivateMessage, or a PublicMessage carrying a proposal or commit. Commits may be at most MAX_COMMIT_BYTES. */
  ciphertext: Uint8Array
  /** The epoch in the message's MLS header; it must be the conversation's current epoch. */
  epoch: number
  /** DID of the sender; must be the authenticated caller. */
  senderDid: string
  /** Kind of embed the client attached (for example tenor, bsky_post or link). */
  embedType?: string
  /** URI the embed points to (a web URL or an AT-URI). */
  embedUri?: string
  /** Only with a commit: the GroupInfo (RFC 9420 §12.4.3) of the epoch the commit leads to, base64-encoded (an MLSMessage carrying one, or the bare struct), with the external_pub extension. It is stored with the commit, so that a member whose device lost its state can rejoin by external commit (getGroupInfo, processExternalCommit). */
  groupInfo?: string
}

export interface Output {
  /** Identifier of the stored message. */
  messageId: string
  /** When the server stored the message. */
  receivedAt: string
}
