// Generated from lexicons/blue.catbird.mls.getGroupInfo.json by scripts/gen-lexicon-types.ts. Do not edit.

export interface Params {
  /** Identifier of the conversation. */
  convoId: string
}

export interface Output {
  /** The GroupInfo, base64-encoded, as the member who stored it sent it (an MLSMessage carrying one, or the bare struct). It carries the external_pub extension. */
  groupInfo: string
  /** The epoch it describes: the conversation's current epoch, on which the external commit must be built. */
  epoch: number
  /** Not sent by this server: a GroupInfo is good until the next commit, not for a time. An external commit built on an epoch the conversation has left is refused with EpochMismatch; fetch the GroupInfo again then. */
  expiresAt?: string
}
