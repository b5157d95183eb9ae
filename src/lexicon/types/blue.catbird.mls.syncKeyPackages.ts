// Generated from lexicons/blue.catbird.mls.syncKeyPackages.json by scripts/gen-lexicon-types.ts. Do not edit.

export type Params = Record<string, never>

export interface Input {
  /** Hashes (hex) of the key packages the device can still use. */
  localHashes: Array<string>
  /** The device: its deviceId, its mlsDid or its deviceUUID (the iOS client sends its deviceId in one place and its deviceUUID in another). */
  deviceId: string
}

export interface Output {
  /** Hashes of the device's unused key packages left on the server. */
  serverHashes: Array<string>
  /** How many unused key packages of the device were not among localHashes. */
  orphanedCount: number
  /** How many of them were deleted. */
  deletedCount: number
  /** Their hashes. */
  orphanedHashes?: Array<string>
  /** How many unused key packages the device has left. */
  remainingAvailable?: number
  /** The device. */
  deviceId: string
}
