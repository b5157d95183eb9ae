// Generated from lexicons/blue.catbird.mls.getKeyPackageStatus.json by scripts/gen-lexicon-types.ts. Do not edit.

export interface Params {
  /** Largest number of handed-out key packages to list. */
  limit?: number
  /** Resume after this position: the cursor of the previous page. */
  cursor?: string
}

export interface Output {
  /** Key packages of the caller the server holds. */
  totalUploaded: number
  /** Unused, unexpired ones. */
  available: number
  /** Ones handed out. */
  consumed: number
  /** Ones held for a Welcome being sent, not yet handed out for good. */
  reserved?: number
  /** Handed-out key packages, newest first. */
  consumedPackages?: Array<ConsumedPackageView>
  /** Present when there is more: pass it as cursor for the next page. */
  cursor?: string
}

/** A key package of the caller that was handed out. */
export interface ConsumedPackageView {
  /** The key package, by its hash (hex). */
  keyPackageHash: string
  /** The MLS group id (hex) it was used to join, when known. */
  usedInGroup?: string
  /** When it was handed out. */
  consumedAt: string
  /** Its MLS cipher suite. */
  cipherSuite?: "MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519" | "MLS_128_DHKEMP256_AES128GCM_SHA256_P256" | "MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519" | "MLS_256_DHKEMX448_AES256GCM_SHA512_Ed448" | "MLS_256_DHKEMP521_AES256GCM_SHA512_P521" | "MLS_256_DHKEMX448_CHACHA20POLY1305_SHA512_Ed448" | (string & {})
}
