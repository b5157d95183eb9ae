// Generated from lexicons/blue.catbird.mls.getOptInStatus.json by scripts/gen-lexicon-types.ts. Do not edit.

export interface Params {
  /** The users to check. */
  dids: Array<string>
}

export interface Output {
  /** One status per DID asked for. */
  statuses: Array<OptInStatus>
}

/** Whether one user is opted in. */
export interface OptInStatus {
  /** The user. */
  did: string
  /** True when the user is opted in. */
  optedIn: boolean
  /** When the user opted in. */
  optedInAt?: string
}
