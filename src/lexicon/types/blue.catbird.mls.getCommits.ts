// Generated from lexicons/blue.catbird.mls.getCommits.json by scripts/gen-lexicon-types.ts. Do not edit.

export interface Params {
  /** Identifier of the conversation. */
  convoId: string
  /** First epoch of the range (inclusive). */
  fromEpoch: number
  /** Last epoch of the range (inclusive); the current epoch when omitted. */
  toEpoch?: number
}

export interface Output {
  /** Identifier of the conversation. */
  convoId: string
  /** Commits in the range, in epoch order. */
  commits: Array<CommitMessage>
}

/** A stored MLS commit. */
export interface CommitMessage {
  /** Epoch the commit was created in; applying it moves the group to the next epoch. */
  epoch: number
  /** DID of the member that sent the commit. */
  sender: string
  /** The MLS commit message. */
  commitData: Uint8Array
  /** When the server stored it. */
  createdAt: string
}
