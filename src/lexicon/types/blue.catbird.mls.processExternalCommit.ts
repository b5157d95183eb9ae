// Generated from lexicons/blue.catbird.mls.processExternalCommit.json by scripts/gen-lexicon-types.ts. Do not edit.

export type Params = Record<string, never>

export interface Input {
  /** Identifier of the conversation. */
  convoId: string
  /** The external commit, an MLSMessage carrying a PublicMessage, base64-encoded. */
  externalCommit: string
  /** Client-chosen key, generated once per logical write and reused on every retry, so a retried request returns the original result instead of writing twice. */
  idempotencyKey?: string
  /** GroupInfo of the epoch the external commit leads to, base64-encoded (an MLSMessage carrying one, or the bare struct), with the external_pub extension; stored with the commit, so that the next member to recover finds it. */
  groupInfo?: string
}

export interface Output {
  /** The conversation's epoch after the commit: the caller's new MLS state is of this epoch. Messages of earlier epochs cannot be decrypted with it. */
  epoch: number
  /** When the server stored the external commit. */
  rejoinedAt: string
}
