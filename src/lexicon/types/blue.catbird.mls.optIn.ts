// Generated from lexicons/blue.catbird.mls.optIn.json by scripts/gen-lexicon-types.ts. Do not edit.

export type Params = Record<string, never>

export interface Input {
  /** The device opting in. */
  deviceId?: string
}

export interface Output {
  /** True. */
  optedIn: boolean
  /** When the caller first opted in, as far as the server knows: when its earliest registered device was registered (the client opts in as it registers one), else now. */
  optedInAt: string
}
