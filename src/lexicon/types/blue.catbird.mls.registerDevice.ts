// Generated from lexicons/blue.catbird.mls.registerDevice.json by scripts/gen-lexicon-types.ts. Do not edit.

export type Params = Record<string, never>

export interface Input {
  /** A name for the device, shown to its user. */
  deviceName: string
  /** The client's own persistent identifier of the device. */
  deviceUUID?: string
  /** The same, under the name the iOS client sends it from January 2026 on; either may be given (not both, unless equal). */
  deviceUuid?: string
  /** The device's first key packages: 1 to 200 (else InvalidKeyPackages), all signed by its MLS signature key. */
  keyPackages: Array<KeyPackageItem>
  /** The device's own Ed25519 public key (32 raw bytes), recorded as sent; it need not be its MLS signature key, which its key packages carry. */
  signaturePublicKey: Uint8Array
}

export interface Output {
  /** Identifier the server gave the device: 16 lowercase hex digits, the same on every registration of the device. */
  deviceId: string
  /** The identity of the device: `<user DID>#<deviceId>`. */
  mlsDid: string
  /** The MLS group ids (hex) of the conversations the caller is a current member of: the device joins them by external commit. */
  autoJoinedConvos: Array<string>
  /** Welcomes already waiting for the device, if any. */
  welcomeMessages?: Array<WelcomeMessage>
}

/** One key package of the device. */
export interface KeyPackageItem {
  /** The MLS KeyPackage (an MLSMessage carrying one, or the bare struct), base64-encoded. */
  keyPackage: string
  /** Its MLS cipher suite. */
  cipherSuite: string
  /** When it expires. */
  expires: string
}

/** A Welcome waiting for the device. */
export interface WelcomeMessage {
  /** Identifier of the conversation. */
  convoId: string
  /** The MLS Welcome, base64-encoded. */
  welcome: string
}
