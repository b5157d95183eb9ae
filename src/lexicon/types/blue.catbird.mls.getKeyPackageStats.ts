// Generated from lexicons/blue.catbird.mls.getKeyPackageStats.json by scripts/gen-lexicon-types.ts. Do not edit.

export interface Params {
  /** Count only key packages of this cipher suite. */
  cipherSuite?: "MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519" | "MLS_128_DHKEMP256_AES128GCM_SHA256_P256" | "MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519" | "MLS_256_DHKEMX448_AES256GCM_SHA512_Ed448" | "MLS_256_DHKEMP521_AES256GCM_SHA512_P521" | "MLS_256_DHKEMX448_CHACHA20POLY1305_SHA512_Ed448" | (string & {})
}

export interface Output {
  /** Unused, unexpired key packages the caller has left. */
  available: number
  /** Key packages of the caller handed out so far. */
  consumed?: number
}
