import type { ColumnType, Generated, Kysely, Selectable } from 'kysely'

/** A column PostgreSQL fills in on insert (a default), readable as T. */
type Defaulted<T> = ColumnType<T, T | undefined, T>
/** bigint columns: node-pg returns them as strings; we parse them as numbers (see db/index.ts). */
type Int8 = ColumnType<number, number | bigint, number | bigint>

export interface ConvoTable {
  id: string
  group_id: string
  creator_did: string
  cipher_suite: string
  epoch: Defaulted<number>
  last_seq: Defaulted<number>
  name: string | null
  description: string | null
  created_at: Defaulted<Date>
  last_activity_at: Defaulted<Date>
  last_message_at: Date | null
  /** No message of the conversation is older: the retention worker looks at it once this is past its horizon. */
  retained_from_at: Defaulted<Date>
  /** Messages up to this seq were deleted by the retention worker (0: none). */
  purged_seq: Defaulted<number>
  /** Commits built on epochs up to this one were deleted by it (null: none). */
  purged_epoch: ColumnType<number | null, number | null | undefined, number | null>
}

export interface MemberTable {
  convo_id: string
  did: string
  joined_at: Defaulted<Date>
  joined_seq: Defaulted<number>
  left_at: Date | null
  added_by: string | null
  role: Defaulted<Role>
  /** When the member was made admin or moderator. */
  promoted_at: Date | null
  /** The admin who did it; null for the creator and for an admin the server chose when the last one left. */
  promoted_by: string | null
}

export type Role = 'member' | 'moderator' | 'admin'

export type ContentType = 'application' | 'proposal' | 'commit'

export interface MessageTable {
  id: string
  convo_id: string
  seq: Int8
  sender_did: string
  epoch: Int8
  ciphertext: Uint8Array
  embed_type: string | null
  embed_uri: string | null
  created_at: Defaulted<Date>
  /** The client's own id of the message (client-era sendMessage's msgId), unique in its conversation. */
  msg_id: string | null
  /** What the MLS header says it carries. */
  content_type: Defaulted<ContentType>
  /** Sent with `delivery: ephemeral`. */
  ephemeral: Defaulted<boolean>
  /** Global position of the message in event streams (identity column). */
  event_id: ColumnType<number, never, never>
}

export interface CommitTable {
  convo_id: string
  epoch: Int8
  sender_did: string
  data: Uint8Array
  created_at: Defaulted<Date>
  /** Its message's seq: where members receive it (null for commits stored before migration 003). */
  seq: ColumnType<number | null, number | bigint | null, number | bigint | null>
}

export interface KeyPackageTable {
  id: Generated<number>
  owner_did: string
  cipher_suite: string
  data: Uint8Array
  data_sha256: Uint8Array
  created_at: Defaulted<Date>
  expires_at: Date
  consumed_at: Date | null
  consumed_by: string | null
  /** KeyPackageRef (RFC 9420 §5.2); null only for packages consumed before migration 003. */
  ref: Uint8Array | null
  /** The conversation a Welcome naming the package was sent to (reserveWelcome): no other's may name it. */
  reserved_convo_id: string | null
  /** Handed out only when no regular package is left, and never consumed. */
  last_resort: Defaulted<boolean>
  /** A last-resort package's hand-outs since its owner last published a regular one of its suite. */
  handed_out: Defaulted<number>
  /** The signature key of the package's leaf node: what binds it to a device (null before migration 008). */
  leaf_signature_key: Uint8Array | null
  /** The registered device whose MLS signature key signed it, when known. */
  device_id: string | null
}

/** A user's registered device (registerDevice), on the user's shard. */
export interface DeviceTable {
  user_did: string
  /** Made by the server; the device's MLS DID is `<user DID>#<device_id>`. */
  device_id: string
  /** The client's own persistent id of the device, which re-registration is recognised by. */
  device_uuid: string | null
  name: string
  /** As the client registered it. */
  signature_public_key: Uint8Array
  /** The signature key of its key packages' leaves: what binds a package to this device, by fact. */
  mls_signature_key: Uint8Array
  created_at: Defaulted<Date>
  last_seen_at: Defaulted<Date>
}

/** Users who opted out of MLS chat. */
export interface OptOutTable {
  did: string
  opted_out_at: Defaulted<Date>
}

/** A member's device known to be in a conversation, by fact (a Welcome naming its key package, or its external commit). */
export interface MemberDeviceTable {
  convo_id: string
  user_did: string
  device_id: string
  joined_at: Defaulted<Date>
  joined_by: 'welcome' | 'external_commit'
}

export type PendingAdditionStatus = 'pending' | 'in_progress' | 'completed' | 'cancelled'

/** A member's new device, waiting for another member to add it to a conversation. */
export interface PendingDeviceAdditionTable {
  convo_id: string
  id: string
  user_did: string
  device_id: string
  device_name: string
  status: Defaulted<PendingAdditionStatus>
  claimed_by: string | null
  claimed_until: Date | null
  created_at: Defaulted<Date>
  settled_at: Date | null
  settled_by: 'complete' | 'welcome' | 'external_commit' | 'left' | 'device_deleted' | null
  new_epoch: ColumnType<number | null, number | null, number | null>
}

/** A device's push token (registerDeviceToken), on its user's shard. */
export interface PushTokenTable {
  user_did: string
  device_id: string
  /** APNs: the device token, lowercase hex. */
  token: string
  platform: Defaulted<PushPlatform>
  registered_at: Defaulted<Date>
}

export type PushPlatform = 'ios' | 'android' | 'web'

/** What a push is about: a message, a commit, or the Welcome of members added. */
export type PushKind = 'message' | 'commit' | 'welcome'

/** Something to push, written with what it is about, on the conversation's shard. */
export interface PushOutboxTable {
  convo_id: string
  /** The message's (or commit's) seq; a Welcome's: the commit's that added its recipients, or the conversation's last. */
  seq: Int8
  kind: PushKind
  /** The device that sent the message, when named: the sender's other devices are pushed to. */
  sender_device_id: string | null
  /** A Welcome's: the users of the devices it is delivered to, one per delivery. */
  recipients: string[] | null
  /** A Welcome's: each delivery's device ('' for one the server does not know: all of its user's devices). */
  recipient_devices: string[] | null
  created_at: Defaulted<Date>
  claimed_by: string | null
  claimed_until: Date | null
}

/** One device's push that APNs did not take yet, as it was sent, until it is due again. */
export interface PushRetryTable {
  user_did: string
  device_id: string
  apns_id: string
  push_type: string
  priority: number
  collapse_id: string | null
  payload: string
  expires_at: Date
  attempts: number
  next_attempt_at: Date
  last_error: string
  created_at: Defaulted<Date>
  claimed_by: string | null
  claimed_until: Date | null
}

export type ConvoEventKind = 'membership' | 'role' | 'new_device' | 'group_info_refresh' | 'readdition'

/** What happens in a conversation that is not a message; its event id orders it with the messages (migration 009). */
export interface ConvoEventTable {
  convo_id: string
  /** From message.event_id's sequence. */
  event_id: ColumnType<number, never, never>
  kind: ConvoEventKind
  /** Whom it is about: the member who joined or left, the user of the new device, who asked. */
  did: string
  /** The conversation's last message when it happened: members who joined at or before it see it. */
  after_seq: Int8
  /** Its fields, as the subscription's event carries them (lexicon names). */
  body: ColumnType<Record<string, unknown>, string, string>
  created_at: Defaulted<Date>
}

/** A ticket of getSubscriptionTicket, by the sha256 of the ticket (its shard key). */
export interface SubscriptionTicketTable {
  ticket_hash: string
  did: string
  convo_id: string | null
  expires_at: Date
  used_at: Date | null
}

/** A key package a conversation's Welcome used (on the conversation's shard): it admits no one there again. */
export interface AdmittedKeyPackageTable {
  convo_id: string
  ref: Uint8Array
  owner_did: string
  /** The epoch of the commit whose Welcome used it. */
  epoch: ColumnType<number, number | bigint, number | bigint>
  admitted_at: Defaulted<Date>
}

/** Who got which last-resort key package: a Welcome naming it must come from one of them. */
export interface LastResortHandoutTable {
  owner_did: string
  ref: Uint8Array
  claimed_by: string
  claimed_at: Defaulted<Date>
}

/** The GroupInfo of a conversation's current epoch, for rejoining by external commit. */
export interface GroupInfoTable {
  convo_id: string
  epoch: Int8
  data: Uint8Array
  stored_by: string
  created_at: Defaulted<Date>
}

export interface WelcomeTable {
  id: Generated<number>
  convo_id: string
  data: Uint8Array
  created_at: Defaulted<Date>
}

export type WelcomeState = 'available' | 'in_flight' | 'consumed'

export interface WelcomeDeliveryTable {
  convo_id: string
  recipient_did: string
  /** The recipient's device the Welcome names a key package of; empty when the server knows no device. */
  device_id: Defaulted<string>
  welcome_id: number
  state: Defaulted<WelcomeState>
  created_at: Defaulted<Date>
  expires_at: Date
  fetched_at: Date | null
  fetch_count: Defaulted<number>
  consumed_at: Date | null
  consumed_via: 'confirm' | 'message' | null
  failure_count: Defaulted<number>
  last_error: string | null
}

export interface IdempotencyKeyTable {
  /** Where the record lives: the conversation (conversation methods) or the caller (publishKeyPackage). */
  shard_key: string
  scope_hash: Uint8Array
  caller_did: string
  nsid: string
  fingerprint: Uint8Array
  /** The answer's HTTP status; 0 marks a claim, which only its own transaction ever sees. */
  status: number
  /** The answer's JSON, as sent. */
  response: unknown
  created_at: Defaulted<Date>
  expires_at: Date
}

/** The group ids of conversations created before migration 006, whose ids are not derived from them. */
export interface ConvoGroupBefore006Table {
  /** Lowercase hex. */
  group_id: string
  convo_id: string
}

/** A conversation's policy; no row is the default one. */
export interface ConvoPolicyTable {
  convo_id: string
  allow_invites: boolean
  admin_only_invites: boolean
  allow_member_add: boolean
  allow_member_remove: boolean
  require_admin_approval: boolean
  /** Null: the server's limit. */
  max_members: number | null
  updated_at: Defaulted<Date>
  updated_by: string
}

/** What admins did in a conversation (and the server, when its last admin left). */
export interface AdminActionTable {
  convo_id: string
  id: string
  /** Null: the server. */
  actor_did: string | null
  action: AdminActionKind
  target_did: string | null
  reason: string | null
  created_at: Defaulted<Date>
}

export type AdminActionKind =
  | 'promote_admin'
  | 'demote_admin'
  | 'promote_moderator'
  | 'demote_moderator'
  | 'remove_member'
  | 'update_policy'
  | 'resolve_report'
  | 'block_reported'
  | 'succession'

export type ReportStatus = 'pending' | 'resolved' | 'dismissed'

/** A member's report about another, for the conversation's admins. */
export interface MemberReportTable {
  convo_id: string
  id: string
  reporter_did: string
  reported_did: string
  category: string
  content: Uint8Array
  message_ids: Defaulted<string[]>
  status: Defaulted<ReportStatus>
  created_at: Defaulted<Date>
  resolved_by: string | null
  resolved_at: Date | null
  resolution_action: string | null
  resolution_notes: string | null
}

/** A Bluesky block a user reported making (handleBlockChange), on the blocker's shard. */
export interface UserBlockTable {
  blocker_did: string
  blocked_did: string
  block_uri: string | null
  created_at: Defaulted<Date>
}

/** A DID an operator took down: its calls are refused. */
export interface AccountTakedownTable {
  did: string
  reason: string | null
  taken_down_at: Defaulted<Date>
}

export interface DatabaseSchema {
  convo: ConvoTable
  convo_group_before_006: ConvoGroupBefore006Table
  member: MemberTable
  message: MessageTable
  commit: CommitTable
  key_package: KeyPackageTable
  last_resort_handout: LastResortHandoutTable
  admitted_key_package: AdmittedKeyPackageTable
  group_info: GroupInfoTable
  welcome: WelcomeTable
  welcome_delivery: WelcomeDeliveryTable
  idempotency_key: IdempotencyKeyTable
  device: DeviceTable
  opt_out: OptOutTable
  member_device: MemberDeviceTable
  pending_device_addition: PendingDeviceAdditionTable
  push_token: PushTokenTable
  push_outbox: PushOutboxTable
  push_retry: PushRetryTable
  convo_event: ConvoEventTable
  subscription_ticket: SubscriptionTicketTable
  convo_policy: ConvoPolicyTable
  admin_action: AdminActionTable
  member_report: MemberReportTable
  user_block: UserBlockTable
  account_takedown: AccountTakedownTable
}

export type Convo = Selectable<ConvoTable>
export type Message = Selectable<MessageTable>
export type ConvoEvent = Selectable<ConvoEventTable>
export type ConvoPolicy = Selectable<ConvoPolicyTable>

/** The database, or a transaction on it: what services take. */
export type Db = Kysely<DatabaseSchema>
