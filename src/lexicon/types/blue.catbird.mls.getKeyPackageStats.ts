// Generated from lexicons/blue.catbird.mls.getKeyPackageStats.json by scripts/gen-lexicon-types.ts. Do not edit.

export interface Params {
  /** Whose key packages: only the caller's own can be counted (another DID is refused with InvalidDid). */
  did?: string
  /** Count only key packages of this cipher suite. */
  cipherSuite?: "MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519" | "MLS_128_DHKEMP256_AES128GCM_SHA256_P256" | "MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519" | "MLS_256_DHKEMX448_AES256GCM_SHA512_Ed448" | "MLS_256_DHKEMP521_AES256GCM_SHA512_P521" | "MLS_256_DHKEMX448_CHACHA20POLY1305_SHA512_Ed448" | (string & {})
}

export interface Output {
  /** Unused, unexpired regular key packages the caller has left (the last-resort one not counted). */
  available: number
  /** Clients should publish more key packages when available is below this (KEY_PACKAGE_REPLENISH_THRESHOLD). */
  threshold: number
  /** True when available is below threshold. */
  needsReplenish: boolean
  /** Key packages of the caller the server holds: unused, handed out or expired, the last-resort one included. */
  total: number
  /** Key packages of the caller handed out so far. */
  consumed: number
  /** Key packages of the caller handed out in the last 24 hours. */
  consumedLast24h: number
  /** Key packages of the caller handed out in the last 7 days. */
  consumedLast7d: number
  /** Key packages handed out per day over the last 7 days, rounded down. */
  averageDailyConsumption: number
  /** In how many days, at that pace, none would be left (not given by this server yet). */
  predictedDepletionDays?: number
  /** How long until the first unused key package expires (not given by this server yet). */
  oldestExpiresIn?: string
  /** The counts per cipher suite (not given by this server yet). */
  byCipherSuite?: Array<CipherSuiteStats>
  /** The caller has an unexpired last-resort key package (of cipherSuite, when given). */
  lastResort?: boolean
  /** How often the last-resort key package was handed out since the caller last published a regular key package of its cipher suite: while it grows, others add the caller with a reused key package, and the client should publish fresh ones. */
  lastResortHandouts?: number
}

/** Key packages of one cipher suite. */
export interface CipherSuiteStats {
  /** The MLS cipher suite. */
  cipherSuite: "MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519" | "MLS_128_DHKEMP256_AES128GCM_SHA256_P256" | "MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519" | "MLS_256_DHKEMX448_AES256GCM_SHA512_Ed448" | "MLS_256_DHKEMP521_AES256GCM_SHA512_P521" | "MLS_256_DHKEMX448_CHACHA20POLY1305_SHA512_Ed448" | (string & {})
  /** Unused, unexpired ones. */
  available: number
  /** Ones handed out. */
  consumed?: number
}
