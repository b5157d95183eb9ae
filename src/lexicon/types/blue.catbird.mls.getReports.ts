// Generated from lexicons/blue.catbird.mls.getReports.json by scripts/gen-lexicon-types.ts. Do not edit.

export interface Params {
  /** Identifier of the conversation. */
  convoId: string
  /** Only reports in this state. */
  status?: "pending" | "resolved" | "dismissed" | (string & {})
  /** Largest number of entries to return. */
  limit?: number
}

export interface Output {
  /** Reports, newest first. */
  reports: Array<ReportView>
}

/** A report about a member. */
export interface ReportView {
  /** Identifier of the report. */
  id: string
  /** The member who reported. */
  reporterDid: string
  /** The member reported. */
  reportedDid: string
  /** The report, as the reporter sent it. */
  encryptedContent: Uint8Array
  /** When it was made. */
  createdAt: string
  /** pending, resolved or dismissed. */
  status: "pending" | "resolved" | "dismissed" | (string & {})
  /** The admin who resolved it. */
  resolvedBy?: string
  /** When it was resolved. */
  resolvedAt?: string
}
