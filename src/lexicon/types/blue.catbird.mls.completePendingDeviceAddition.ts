// Generated from lexicons/blue.catbird.mls.completePendingDeviceAddition.json by scripts/gen-lexicon-types.ts. Do not edit.

export type Params = Record<string, never>

export interface Input {
  /** The pending addition that was carried out. */
  pendingAdditionId: string
  /** The epoch of the conversation after the commit that added the device. */
  newEpoch: number
}

export interface Output {
  /** True when the addition is recorded as complete. */
  success: boolean
  /** Why not, when success is false: the addition is unknown, or not in a state that can complete. */
  error?: string
}
