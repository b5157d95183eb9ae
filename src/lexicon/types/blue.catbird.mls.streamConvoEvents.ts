// Generated from lexicons/blue.catbird.mls.streamConvoEvents.json by scripts/gen-lexicon-types.ts. Do not edit.
import type * as BlueCatbirdMlsDefs from './blue.catbird.mls.defs.js'

export interface Params {
  /** Resume after this position (the id of the last event received). */
  cursor?: string
  /** Only events of this conversation. */
  convoId?: string
}

export type Output = (MessageEvent & { $type: "blue.catbird.mls.streamConvoEvents#messageEvent" }) | (ReactionEvent & { $type: "blue.catbird.mls.streamConvoEvents#reactionEvent" }) | (TypingEvent & { $type: "blue.catbird.mls.streamConvoEvents#typingEvent" }) | (InfoEvent & { $type: "blue.catbird.mls.streamConvoEvents#infoEvent" })

/** A new message was stored. */
export interface MessageEvent {
  /** Resume position returned by an earlier call. */
  cursor: string
  /** The stored message. */
  message: BlueCatbirdMlsDefs.MessageView
}

/** A reaction was added to or removed from a message. */
export interface ReactionEvent {
  /** Resume position returned by an earlier call. */
  cursor: string
  /** Identifier of the conversation. */
  convoId: string
  /** Message the reaction is about. */
  messageId: string
  /** DID of the member that reacted. */
  did: string
  /** The reaction (an emoji or a short code). */
  reaction: string
  /** Whether the reaction was added or removed. */
  action: "add" | "remove" | (string & {})
}

/** A member started or stopped typing. */
export interface TypingEvent {
  /** Resume position returned by an earlier call. */
  cursor: string
  /** Identifier of the conversation. */
  convoId: string
  /** DID of the member typing. */
  did: string
  /** True when typing started, false when it stopped. */
  isTyping: boolean
}

/** A keep-alive or a notice from the server. */
export interface InfoEvent {
  /** Resume position returned by an earlier call. */
  cursor: string
  /** Human-readable text. */
  info: string
}
