// Generated from lexicons/blue.catbird.mls.resolveReport.json by scripts/gen-lexicon-types.ts. Do not edit.

export type Params = Record<string, never>

export interface Input {
  /** The report. */
  reportId: string
  /** What was done: removed_member, dismissed or no_action. */
  action: "removed_member" | "dismissed" | "no_action" | (string & {})
  /** The admin's notes. */
  notes?: string
}

export interface Output {
  /** True when the report is resolved. */
  ok: boolean
}
