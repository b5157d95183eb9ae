// Generated from lexicons/blue.catbird.mls.sendMessage.json by scripts/gen-lexicon-types.ts. Do not edit.

export type Params = Record<string, never>

export interface Input {
  /** Identifier of the conversation. */
  convoId: string
  /** The client's identifier of the message: a UUID (the iOS client sends one, 36 characters, uppercase) or a ULID (26). Sent by the client-era clients. */
  msgId?: string
  /** Client-chosen key, generated once per logical write and reused on every retry, so a retried request returns the original result instead of writing twice. */
  idempotencyKey?: string
  /** The MLSMessage (RFC 9420 §6) as the sender made it: a PrivateMessage, or a PublicMessage carrying a proposal or commit. Commits may be at most MAX_COMMIT_BYTES. With paddedSize (the client-era clients), the bytes are padded: a 4-byte big-endian length, the MLSMessage, then zeros up to paddedSize bytes. */
  ciphertext: Uint8Array
  /** The epoch in the message's MLS header; it must be the conversation's current epoch. */
  epoch: number
  /** The length of ciphertext, padded to a bucket size so that the server does not learn the length of the message (sent by the client-era clients, whose ciphertext is then padded: see ciphertext). */
  paddedSize?: number
  /** persistent (the default): stored and delivered in order; ephemeral: delivered to those connected now and not kept (typing indicators, for example). */
  delivery?: "persistent" | "ephemeral" | (string & {})
  /** The caller's own registered device (registerDevice) that sends the message, by its deviceId, mlsDid or deviceUUID: the caller's other devices get its push notification. Without it none of the caller's devices does. */
  deviceId?: string
  /** DID of the sender; when given it must be the authenticated caller (the seed-era clients send it, the client-era ones do not). */
  senderDid?: string
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
  /** Position of the message in its conversation (its messageView.seq). */
  seq: number
  /** The MLS epoch the message was sent in (a commit moves the conversation to the next one). */
  epoch: number
}
