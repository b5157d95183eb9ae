// Generated from lexicons/blue.catbird.mls.reportMember.json by scripts/gen-lexicon-types.ts. Do not edit.

export type Params = Record<string, never>

export interface Input {
  /** Identifier of the conversation. */
  convoId: string
  /** The member reported. */
  reportedDid: string
  /** What kind of abuse. */
  category: "harassment" | "spam" | "hate_speech" | "violence" | "sexual_content" | "impersonation" | "privacy_violation" | "other" | (string & {})
  /** The report, encrypted for the admins. */
  encryptedContent: Uint8Array
  /** Messages the report is about. */
  messageIds?: Array<string>
}

export interface Output {
  /** Identifier of the report. */
  reportId: string
  /** When it was stored. */
  submittedAt: string
}
