// Generated from lexicons/blue.catbird.mls.unregisterDeviceToken.json by scripts/gen-lexicon-types.ts. Do not edit.

export type Params = Record<string, never>

export interface Input {
  /** The caller's registered device (registerDevice), by its deviceId, mlsDid or deviceUUID. */
  deviceId: string
}

export interface Output {
  /** True when no token of the device is stored. */
  success: boolean
}
