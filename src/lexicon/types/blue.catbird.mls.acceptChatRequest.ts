// Generated from lexicons/blue.catbird.mls.acceptChatRequest.json by scripts/gen-lexicon-types.ts. Do not edit.

export type Params = Record<string, never>

export interface Input {
  /** The request to accept (from listChatRequests). */
  requestId: string
  /** An MLS Welcome for the request's sender, when accepting creates the group on the recipient's side. */
  welcomeData?: Uint8Array
}

export interface Output {
  /** The conversation the request became. */
  convoId: string
  /** The messages the sender sent with the request, in their order. */
  heldMessages: Array<DeliveredMessage>
  /** When the request was accepted. */
  acceptedAt: string
}

/** A message held with a chat request, handed over on acceptance. */
export interface DeliveredMessage {
  /** Identifier of the held message. */
  id: string
  /** The held MLS ciphertext, as the sender sent it. */
  ciphertext: Uint8Array
  /** The padded size the sender declared. */
  paddedSize: number
  /** Position of the message among the held ones, from 0. */
  sequence: number
  /** The ephemeral public key the sender attached, if any. */
  ephPubKey?: Uint8Array
}
