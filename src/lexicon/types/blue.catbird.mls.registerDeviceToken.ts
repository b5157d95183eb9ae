// Generated from lexicons/blue.catbird.mls.registerDeviceToken.json by scripts/gen-lexicon-types.ts. Do not edit.

export type Params = Record<string, never>

export interface Input {
  /** The caller's registered device (registerDevice), by its deviceId, mlsDid or deviceUUID. */
  deviceId: string
  /** Its push token (APNs: hex). */
  pushToken: string
  /** A name for the device. */
  deviceName?: string
  /** ios, android or web. */
  platform?: "ios" | "android" | "web" | (string & {})
}

export interface Output {
  /** True when the token is stored. */
  success: boolean
}
