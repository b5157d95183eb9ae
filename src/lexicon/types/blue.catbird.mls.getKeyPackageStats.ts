// Generated from lexicons/blue.catbird.mls.getKeyPackageStats.json by scripts/gen-lexicon-types.ts. Do not edit.

export interface Params {
  /** Count only key packages of this cipher suite. */
  cipherSuite?: "MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519" | "MLS_128_DHKEMP256_AES128GCM_SHA256_P256" | "MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519" | "MLS_256_DHKEMX448_AES256GCM_SHA512_Ed448" | "MLS_256_DHKEMP521_AES256GCM_SHA512_P521" | "MLS_256_DHKEMX448_CHACHA20POLY1305_SHA512_Ed448" | (string & {})
}

export interface Output {
  /** Unused, unexpired regular key packages the caller has left (the last-resort one not counted). */
  available: number
  /** Key packages of the caller handed out so far. */
  consumed?: number
  /** The caller has an unexpired last-resort key package (of cipherSuite, when given). */
  lastResort?: boolean
  /** How often the last-resort key package was handed out since the caller last published a regular key package of its cipher suite: while it grows, others add the caller with a reused key package, and the client should publish fresh ones. */
  lastResortHandouts?: number
}
