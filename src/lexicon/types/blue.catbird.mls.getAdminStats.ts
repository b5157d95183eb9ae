// Generated from lexicons/blue.catbird.mls.getAdminStats.json by scripts/gen-lexicon-types.ts. Do not edit.

export interface Params {
  /** The conversation (the caller must be its admin); without it the request is refused (NotAdmin). */
  convoId?: string
  /** Count only what happened after this. */
  since?: string
}

export interface Output {
  /** The counts. */
  stats: ModerationStats
  /** When they were counted. */
  generatedAt: string
  /** The conversation counted, when one was asked for. */
  convoId?: string
}

/** Moderation counts. */
export interface ModerationStats {
  /** Reports submitted. */
  totalReports: number
  /** Reports not resolved yet. */
  pendingReports: number
  /** Reports resolved. */
  resolvedReports: number
  /** Members removed by admins. */
  totalRemovals: number
  /** Conflicts of Bluesky blocks between members resolved by admins. */
  blockConflictsResolved: number
  /** Reports by category. */
  reportsByCategory?: ReportCategoryCounts
  /** Average time from report to resolution, in hours. */
  averageResolutionTimeHours?: number
}

/** Reports by category. */
export interface ReportCategoryCounts {
  /** Reports of harassment. */
  harassment?: number
  /** Reports of spam. */
  spam?: number
  /** Reports of hate speech. */
  hateSpeech?: number
  /** Reports of violence. */
  violence?: number
  /** Reports of sexual content. */
  sexualContent?: number
  /** Reports of impersonation. */
  impersonation?: number
  /** Reports of privacy violations. */
  privacyViolation?: number
  /** Reports of anything else. */
  otherCategory?: number
}
