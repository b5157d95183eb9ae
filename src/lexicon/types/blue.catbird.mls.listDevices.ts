// Generated from lexicons/blue.catbird.mls.listDevices.json by scripts/gen-lexicon-types.ts. Do not edit.

export type Params = Record<string, never>

export interface Output {
  /** Devices, the most recently seen first. */
  devices: Array<DeviceInfo>
}

/** A registered device. */
export interface DeviceInfo {
  /** Identifier the server gave the device. */
  deviceId: string
  /** Its name, as its user gave it. */
  deviceName: string
  /** The client's own persistent identifier of the device, when it gave one. */
  deviceUUID?: string
  /** The identity of the device: `<user DID>#<deviceId>`. */
  credentialDid: string
  /** When the device last called the server. */
  lastSeenAt: string
  /** When it was registered. */
  registeredAt: string
  /** Its unused, unexpired key packages. */
  keyPackageCount: number
}
