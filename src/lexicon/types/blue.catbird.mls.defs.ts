// Generated from lexicons/blue.catbird.mls.defs.json by scripts/gen-lexicon-types.ts. Do not edit.

/** A conversation with its members and current MLS epoch. */
export interface ConvoView {
  /** Conversation identifier (a TID). */
  id: string
  /** MLS group identifier, hex-encoded. */
  groupId: string
  /** DID of the member that created the conversation. */
  creator: string
  /** Current members. */
  members: Array<MemberView>
  /** Current MLS epoch. */
  epoch: number
  /** MLS cipher suite of the group. */
  cipherSuite: "MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519" | "MLS_128_DHKEMP256_AES128GCM_SHA256_P256" | "MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519" | "MLS_256_DHKEMX448_AES256GCM_SHA512_Ed448" | "MLS_256_DHKEMP521_AES256GCM_SHA512_P521" | "MLS_256_DHKEMX448_CHACHA20POLY1305_SHA512_Ed448" | (string & {})
  /** When the conversation was created. */
  createdAt: string
  /** When the latest message was stored. */
  lastMessageAt?: string
  /** Name and description, when set. */
  metadata?: ConvoMetadata
}

/** Text metadata of a conversation. */
export interface ConvoMetadata {
  /** Display name of the conversation. */
  name?: string
  /** Free-text description of the conversation. */
  description?: string
}

/** A member of a conversation. */
export interface MemberView {
  /** The member as the MLS group knows it: the user's DID, or `<user DID>#<deviceId>` for one device of the user (userDid names the user either way). No DID format is declared: atproto's DID syntax has no `#`, and the iOS client's decoder takes it. This server lists users: did is the user's DID. */
  did: string
  /** The user's DID (without a device). */
  userDid: string
  /** The device, when did names one. */
  deviceId?: string
  /** Its name, as its user gave it. */
  deviceName?: string
  /** When the member (last) joined. */
  joinedAt: string
  /** True when the member is an admin of the conversation (its creator is one). */
  isAdmin: boolean
  /** True when the member is a moderator of the conversation. */
  isModerator?: boolean
  /** When the member was made an admin or moderator. */
  promotedAt?: string
  /** The admin who did it. */
  promotedBy?: string
  /** Position of the member in the MLS ratchet tree. */
  leafIndex?: number
  /** The member's MLS credential. */
  credential?: Uint8Array
}

/** A stored MLS message (application message, proposal or commit); the server holds its bytes and reads only its header. */
export interface MessageView {
  /** Message identifier. */
  id: string
  /** Conversation the message belongs to. */
  convoId: string
  /** DID of the member that sent it (the seed-era clients read it; the client-era ones learn the sender from the decrypted message). */
  sender: string
  /** The MLSMessage as the sender made it: padded as sent (see sendMessage) to a reader naming the conversation by its group id (the client-era clients), the MLSMessage inside the padding to one naming it by its id and on streamConvoEvents (the seed-era clients, which know no padding). */
  ciphertext: Uint8Array
  /** MLS epoch the message was encrypted in. */
  epoch: number
  /** Position of the message in its conversation: increases by one per message. */
  seq: number
  /** When the server stored it. */
  createdAt: string
  /** Kind of embed the client attached (for example tenor, bsky_post or link). */
  embedType?: string
  /** URI the embed points to (a web URL or an AT-URI). */
  embedUri?: string
  /** app for an application message, commit for a commit (a proposal is app). */
  messageType?: "app" | "commit"
}

/** A key package handed out so its owner can be added to a conversation. */
export interface KeyPackageRef {
  /** DID of the key package owner. */
  did: string
  /** MLS key package, base64-encoded. */
  keyPackage: string
  /** The key package's KeyPackageRef (RFC 9420 §5.2: RefHash("MLS 1.0 KeyPackage Reference", KeyPackage) with its cipher suite's hash), lowercase hex. The iOS client computes it too and skips a key package whose hash differs. Given for the cipher suites that hash with SHA-256 (64 characters); the SHA-512 suites' 128 would exceed the client-era lexicon's bound, so they go without. */
  keyPackageHash?: string
  /** Cipher suite the key package supports. */
  cipherSuite: "MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519" | "MLS_128_DHKEMP256_AES128GCM_SHA256_P256" | "MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519" | "MLS_256_DHKEMX448_AES256GCM_SHA512_Ed448" | "MLS_256_DHKEMP521_AES256GCM_SHA512_P521" | "MLS_256_DHKEMX448_CHACHA20POLY1305_SHA512_Ed448" | (string & {})
}
