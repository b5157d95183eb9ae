// Generated from lexicons/blue.catbird.mls.declineChatRequest.json by scripts/gen-lexicon-types.ts. Do not edit.

export type Params = Record<string, never>

export interface Input {
  /** The request to decline. */
  requestId: string
  /** Report the sender for this reason. */
  reportReason?: "spam" | "harassment" | "inappropriate" | "other"
  /** Details of the report. */
  reportDetails?: string
}

export interface Output {
  /** True when the request is declined. */
  success: boolean
}
