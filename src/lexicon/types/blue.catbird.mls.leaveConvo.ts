// Generated from lexicons/blue.catbird.mls.leaveConvo.json by scripts/gen-lexicon-types.ts. Do not edit.

export type Params = Record<string, never>

export interface Input {
  /** Identifier of the conversation. */
  convoId: string
  /** Member to remove; the caller when omitted. */
  targetDid?: string
  /** MLS commit (an MLSMessage) of the removal, base64-encoded; it advances the epoch. */
  commit?: string
  /** The conversation epoch the commit was built on; when given, it must be the epoch in the commit's header. A commit built on another epoch than the conversation's is refused with EpochMismatch (unless it is the very commit already stored for that epoch: a retry), so two racing commits cannot both advance the epoch. */
  epoch?: number
  /** Only with commit: the GroupInfo (RFC 9420 §12.4.3) of the epoch the commit leads to, base64-encoded (an MLSMessage carrying one, or the bare struct), with the external_pub extension. It is stored with the commit, so that a member whose device lost its state can rejoin by external commit (getGroupInfo, processExternalCommit). */
  groupInfo?: string
}

export interface Output {
  /** True when the request was applied (also when the member had already left). */
  success: boolean
  /** The conversation epoch after the change (after the commit, for a retried commit). */
  newEpoch: number
}
