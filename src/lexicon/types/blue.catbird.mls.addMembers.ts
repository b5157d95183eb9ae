// Generated from lexicons/blue.catbird.mls.addMembers.json by scripts/gen-lexicon-types.ts. Do not edit.

export type Params = Record<string, never>

export interface Input {
  /** Identifier of the conversation. */
  convoId: string
  /** Client-chosen key, generated once per logical write and reused on every retry, so a retried request returns the original result instead of writing twice. */
  idempotencyKey?: string
  /** DIDs to add to the conversation. */
  didList: Array<string>
  /** MLS commit (an MLSMessage) adding the new members, base64-encoded; required when a DID is new. */
  commit?: string
  /** MLS Welcome for the new members, base64-encoded; one Welcome names a key package of every member being added. */
  welcomeMessage?: string
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
