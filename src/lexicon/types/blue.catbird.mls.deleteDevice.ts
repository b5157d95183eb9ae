// Generated from lexicons/blue.catbird.mls.deleteDevice.json by scripts/gen-lexicon-types.ts. Do not edit.

export type Params = Record<string, never>

export interface Input {
  /** The device to delete (deviceId of registerDevice or listDevices). */
  deviceId: string
}

export interface Output {
  /** True when the device was deleted. */
  deleted: boolean
  /** How many of its key packages were deleted with it. */
  keyPackagesDeleted: number
}
