// Generated from lexicons/blue.catbird.mls.addMembers.json by scripts/gen-lexicon-types.ts. Do not edit.

export type Params = Record<string, never>

export interface Input {
  /** Identifier of the conversation. */
  convoId: string
  /** Client-chosen key, generated once per logical write and reused on every retry, so a retried request returns the original result instead of writing twice. */
  idempotencyKey?: string
  /** DIDs to add to the conversation. The iOS client sends an empty list, which its own lexicon refuses, with a commit that adds no user: a key update, or the addition of a new device of a current member (with its Welcome; see claimPendingDeviceAddition). This lexicon takes it; this server refuses such a commit with AlreadyMember for now. */
  didList: Array<string>
  /** MLS commit (an MLSMessage) adding the new members, base64-encoded; required when a DID is new. */
  commit?: string
  /** MLS Welcome for the new members, base64-encoded; one Welcome names a key package of every member being added. */
  welcomeMessage?: string
  /** The key packages the Welcome admits, one entry per key package (a user with several devices has several). Sent by the client-era iOS client; the server reads the key packages a Welcome names from the Welcome itself and does not rely on this list. */
  keyPackageHashes?: Array<KeyPackageHashEntry>
  /** The conversation epoch the commit was built on; when given, it must be the epoch in the commit's header. A commit built on another epoch than the conversation's is refused with EpochMismatch (unless it is the very commit already stored for that epoch: a retry), so two racing commits cannot both advance the epoch. */
  epoch?: number
  /** GroupInfo (RFC 9420 §12.4.3) of the epoch this commit leads to, base64-encoded: an MLSMessage carrying one, or the bare struct. It must carry the external_pub extension; it is stored with the commit, so that a member whose device lost its state can rejoin by external commit (getGroupInfo, processExternalCommit). */
  groupInfo?: string
}

export interface Output {
  /** True when the request was applied (also when every DID was already a member). */
  success: boolean
  /** The conversation epoch after the change (after the commit, for a retried commit). */
  newEpoch: number
}

/** A key package the Welcome names, by its owner and its KeyPackageRef. */
export interface KeyPackageHashEntry {
  /** DID of the key package owner. */
  did: string
  /** The key package's KeyPackageRef (RFC 9420 §5.2), hex: keyPackageHash of the keyPackageRef getKeyPackages handed out. */
  hash: string
}
