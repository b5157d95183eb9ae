// Generated from lexicons/blue.catbird.mls.getKeyPackages.json by scripts/gen-lexicon-types.ts. Do not edit.
import type * as BlueCatbirdMlsDefs from './blue.catbird.mls.defs.js'

export interface Params {
  /** DIDs whose key packages are wanted. */
  dids: Array<string>
  /** Only key packages of this cipher suite. */
  cipherSuite?: "MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519" | "MLS_128_DHKEMP256_AES128GCM_SHA256_P256" | "MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519" | "MLS_256_DHKEMX448_AES256GCM_SHA512_Ed448" | "MLS_256_DHKEMP521_AES256GCM_SHA512_P521" | "MLS_256_DHKEMX448_CHACHA20POLY1305_SHA512_Ed448" | (string & {})
}

export interface Output {
  /** One key package per DID that had one. */
  keyPackages: Array<BlueCatbirdMlsDefs.KeyPackageRef>
  /** Requested DIDs with no key package available. */
  missing?: Array<string>
}
