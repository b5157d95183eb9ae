// Generated from lexicons/blue.catbird.mls.createConvo.json by scripts/gen-lexicon-types.ts. Do not edit.
import type * as BlueCatbirdMlsDefs from './blue.catbird.mls.defs.js'

export type Params = Record<string, never>

export interface Input {
  /** MLS group identifier, hex-encoded. */
  groupId: string
  /** Client-chosen key, generated once per logical write and reused on every retry, so a retried request returns the original result instead of writing twice. */
  idempotencyKey?: string
  /** MLS cipher suite the group uses. */
  cipherSuite: "MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519" | "MLS_128_DHKEMP256_AES128GCM_SHA256_P256" | "MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519" | "MLS_256_DHKEMX448_AES256GCM_SHA512_Ed448" | "MLS_256_DHKEMP521_AES256GCM_SHA512_P521" | "MLS_256_DHKEMX448_CHACHA20POLY1305_SHA512_Ed448" | (string & {})
  /** DIDs to add as members besides the creator (the client-era clients may send up to 999; MAX_MEMBERS_PER_CONVO bounds the conversation, TooManyMembers beyond it). */
  initialMembers?: Array<string>
  /** MLS Welcome message, base64-encoded; one message carries the secrets for every initial member. Required with initialMembers. */
  welcomeMessage?: string
  /** The key packages the Welcome admits, one entry per key package (a user with several devices has several). Sent by the client-era iOS client; the server reads the key packages a Welcome names from the Welcome itself and does not rely on this list. */
  keyPackageHashes?: Array<KeyPackageHashEntry>
  /** The MLS commit (an MLSMessage, base64-encoded) that added the initial members. It is stored for getCommits, and the conversation starts at the epoch after it; its group id must be groupId. */
  commit?: string
  /** The creator's MLS epoch once the group is created and the initial members added (the later upstream field). With `commit` it must be the commit's epoch + 1; with a Welcome it is at least 1. Without it: see the method's description. The client-era lexicon gives it a default of 0; this one gives none, since an absent epoch is not epoch 0 here (the iOS client leaves it out). */
  currentEpoch?: number
  /** Optional name and description. */
  metadata?: MetadataInput
  /** GroupInfo (RFC 9420 §12.4.3) of the epoch the conversation starts at (after commit, when there is one), base64-encoded: an MLSMessage carrying one, or the bare struct. It must carry the external_pub extension; stored so that a member whose device lost its state can rejoin by external commit (getGroupInfo, processExternalCommit). */
  groupInfo?: string
}

export type Output = BlueCatbirdMlsDefs.ConvoView

/** Text metadata given when creating a conversation. */
export interface MetadataInput {
  /** Display name of the conversation. */
  name?: string
  /** Free-text description of the conversation. */
  description?: string
}

/** A key package the Welcome names, by its owner and its KeyPackageRef. */
export interface KeyPackageHashEntry {
  /** DID of the key package owner. */
  did: string
  /** The key package's KeyPackageRef (RFC 9420 §5.2), hex: keyPackageHash of the keyPackageRef getKeyPackages handed out. */
  hash: string
}
