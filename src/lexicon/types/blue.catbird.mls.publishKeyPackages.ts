// Generated from lexicons/blue.catbird.mls.publishKeyPackages.json by scripts/gen-lexicon-types.ts. Do not edit.

export type Params = Record<string, never>

export interface Input {
  /** The key packages: 1 to 100 (more is refused with BatchTooLarge, none with InvalidBatch). */
  keyPackages: Array<KeyPackageItem>
}

export interface Output {
  /** How many were stored (or were stored already by an earlier try with the same idempotency key). */
  succeeded: number
  /** How many were refused. */
  failed: number
  /** Why each refused one was refused (absent when none was). */
  errors?: Array<BatchError>
}

/** One key package to publish. */
export interface KeyPackageItem {
  /** The MLS KeyPackage (an MLSMessage carrying one, or the bare struct), base64-encoded. */
  keyPackage: string
  /** Its MLS cipher suite. */
  cipherSuite: "MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519" | "MLS_128_DHKEMP256_AES128GCM_SHA256_P256" | "MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519" | "MLS_256_DHKEMX448_AES256GCM_SHA512_Ed448" | "MLS_256_DHKEMP521_AES256GCM_SHA512_P521" | "MLS_256_DHKEMX448_CHACHA20POLY1305_SHA512_Ed448" | (string & {})
  /** When it expires (at most KEY_PACKAGE_MAX_LIFETIME_DAYS ahead). */
  expires: string
  /** Client-chosen key of this one key package: sent again with the same item, it is not stored twice and counts as stored; with another item, that item is refused (IdempotencyKeyReused). */
  idempotencyKey?: string
  /** The device that made it (its deviceId, mlsDid or deviceUUID): when given, it must be one of the caller's devices and the key package signed by that device's MLS key, else the item is refused. The package is bound to its device by its key either way. */
  deviceId?: string
  /** The identity its credential names, as the client sees it (`<user DID>` or `<user DID>#<deviceId>`); the server reads the credential itself. */
  credentialDid?: string
}

/** A key package refused, by its position. */
export interface BatchError {
  /** Position of the refused key package in keyPackages, from 0. */
  index: number
  /** Why it was refused. */
  error: string
}
