// Generated from lexicons/blue.catbird.mls.subscribeConvoEvents.json by scripts/gen-lexicon-types.ts. Do not edit.
import type * as BlueCatbirdMlsDefs from './blue.catbird.mls.defs.js'

export interface Params {
  /** Resume after this position (the cursor of the last event received). */
  cursor?: string
  /** Only events of this conversation. */
  convoId?: string
  /** A ticket from getSubscriptionTicket. */
  ticket?: string
}

/** One event of the stream. */
export type Message = (MessageEvent & { $type: "blue.catbird.mls.subscribeConvoEvents#messageEvent" }) | (ReactionEvent & { $type: "blue.catbird.mls.subscribeConvoEvents#reactionEvent" }) | (TypingEvent & { $type: "blue.catbird.mls.subscribeConvoEvents#typingEvent" }) | (InfoEvent & { $type: "blue.catbird.mls.subscribeConvoEvents#infoEvent" }) | (NewDeviceEvent & { $type: "blue.catbird.mls.subscribeConvoEvents#newDeviceEvent" }) | (GroupInfoRefreshRequestedEvent & { $type: "blue.catbird.mls.subscribeConvoEvents#groupInfoRefreshRequestedEvent" }) | (ReadditionRequestedEvent & { $type: "blue.catbird.mls.subscribeConvoEvents#readditionRequestedEvent" }) | (MembershipChangeEvent & { $type: "blue.catbird.mls.subscribeConvoEvents#membershipChangeEvent" }) | (ReadEvent & { $type: "blue.catbird.mls.subscribeConvoEvents#readEvent" })

/** One event of the stream. */
export interface EventWrapper {
  /** The event. */
  event: (MessageEvent & { $type: "blue.catbird.mls.subscribeConvoEvents#messageEvent" }) | (ReactionEvent & { $type: "blue.catbird.mls.subscribeConvoEvents#reactionEvent" }) | (TypingEvent & { $type: "blue.catbird.mls.subscribeConvoEvents#typingEvent" }) | (InfoEvent & { $type: "blue.catbird.mls.subscribeConvoEvents#infoEvent" }) | (NewDeviceEvent & { $type: "blue.catbird.mls.subscribeConvoEvents#newDeviceEvent" }) | (GroupInfoRefreshRequestedEvent & { $type: "blue.catbird.mls.subscribeConvoEvents#groupInfoRefreshRequestedEvent" }) | (ReadditionRequestedEvent & { $type: "blue.catbird.mls.subscribeConvoEvents#readditionRequestedEvent" }) | (MembershipChangeEvent & { $type: "blue.catbird.mls.subscribeConvoEvents#membershipChangeEvent" }) | (ReadEvent & { $type: "blue.catbird.mls.subscribeConvoEvents#readEvent" })
}

/** A new message was stored. */
export interface MessageEvent {
  /** Resume position of this event. */
  cursor: string
  /** The stored message. */
  message: BlueCatbirdMlsDefs.MessageView
}

/** A reaction was added to or removed from a message. */
export interface ReactionEvent {
  /** Resume position of this event. */
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
  /** Resume position of this event. */
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
  /** Resume position of this event. */
  cursor: string
  /** Human-readable text. */
  info: string
}

/** A member registered a new device, to be added to the conversation. */
export interface NewDeviceEvent {
  /** Resume position of this event. */
  cursor: string
  /** Identifier of the conversation. */
  convoId: string
  /** The member whose device it is. */
  userDid: string
  /** The new device. */
  deviceId: string
  /** Its name, as its user gave it. */
  deviceName?: string
  /** The identity of the new device: `<user DID>#<deviceId>`. */
  deviceCredentialDid: string
  /** The pending addition, to claim and complete. */
  pendingAdditionId: string
}

/** A member asks for a fresh GroupInfo (updateGroupInfo). */
export interface GroupInfoRefreshRequestedEvent {
  /** Resume position of this event. */
  cursor: string
  /** Identifier of the conversation. */
  convoId: string
  /** The member who asked (who does not answer their own request). */
  requestedBy: string
  /** When. */
  requestedAt: string
}

/** A member asks to be added back. */
export interface ReadditionRequestedEvent {
  /** Resume position of this event. */
  cursor: string
  /** Identifier of the conversation. */
  convoId: string
  /** The member asking to be added back. */
  userDid: string
  /** When. */
  requestedAt: string
}

/** A member joined or left the conversation, or a member's role changed. */
export interface MembershipChangeEvent {
  /** Resume position of this event. */
  cursor: string
  /** Identifier of the conversation. */
  convoId: string
  /** The member who joined or left, or whose role changed. */
  did: string
  /** joined, left (by themself), removed or kicked (by an admin); or a role change: promotedAdmin, demotedAdmin, promotedModerator, demotedModerator (the epoch is unchanged; no actor when the server made an heir admin). */
  action: "joined" | "left" | "removed" | "kicked" | "promotedAdmin" | "demotedAdmin" | "promotedModerator" | "demotedModerator" | (string & {})
  /** Who added or removed the member, or changed its role. */
  actor?: string
  /** Why, when given. */
  reason?: string
  /** The conversation epoch after the change. */
  epoch: number
}

/** A member read messages. */
export interface ReadEvent {
  /** Resume position of this event. */
  cursor: string
  /** Identifier of the conversation. */
  convoId: string
  /** The member who read. */
  did: string
  /** Read up to this message; without it, everything. */
  messageId?: string
  /** When. */
  readAt: string
}
