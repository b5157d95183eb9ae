// Generated from lexicons/blue.catbird.mls.validateDeviceState.json by scripts/gen-lexicon-types.ts. Do not edit.

export interface Params {
  /** The device: its id, its mlsDid or its UUID. Without it, the caller's only device; with none or several, the user as a whole (its Welcomes and all its key packages). */
  deviceId?: string
}

export interface Output {
  /** True when nothing is wrong. */
  isValid: boolean
  /** What is wrong, one sentence each. */
  issues: Array<string>
  /** What the client should do about it. */
  recommendations: Array<string>
  /** Conversations the device should be in. */
  expectedConvos?: number
  /** Conversations the device is in, as far as the server knows (without a device: those with no Welcome waiting to be fetched). */
  actualConvos?: number
  /** The device's key packages. */
  keyPackageInventory?: KeyPackageInventory
  /** Conversations the caller asked to be added back to (not answered: this server takes no such requests yet). */
  pendingRejoinRequests?: Array<string>
}

/** The key packages of a device. */
export interface KeyPackageInventory {
  /** Unused, unexpired key packages. */
  available: number
  /** How many the device should keep. */
  target: number
  /** True when it should publish more. */
  needsReplenishment: boolean
  /** Unused key packages of this device alone. */
  perDeviceCount?: number
}
