// Generated from lexicons/blue.catbird.mls.publishKeyPackage.json by scripts/gen-lexicon-types.ts. Do not edit.

export type Params = Record<string, never>

export interface Input {
  /** MLS KeyPackage, base64-encoded: an MLSMessage carrying one (RFC 9420 §6), or the bare struct. */
  keyPackage: string
  /** Client-chosen key, generated once per logical write and reused on every retry, so a retried request returns the original result instead of writing twice. */
  idempotencyKey?: string
  /** Cipher suite the key package supports. */
  cipherSuite: "MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519" | "MLS_128_DHKEMP256_AES128GCM_SHA256_P256" | "MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519" | "MLS_256_DHKEMX448_AES256GCM_SHA512_Ed448" | "MLS_256_DHKEMP521_AES256GCM_SHA512_P521" | "MLS_256_DHKEMX448_CHACHA20POLY1305_SHA512_Ed448" | (string & {})
  /** When the key package stops being handed out; at most 90 days ahead (the server default when omitted), and never after the end of the key package's own lifetime. */
  expires?: string
  /** Publish it as the caller's last-resort key package of its cipher suite (a key package carrying the last_resort extension, type 0x000A, is one without this flag): handed out only when no other key package of the caller is left, never consumed, so several groups can add the caller with it. It replaces the previous one, and does not count toward the limit of unused key packages. */
  lastResort?: boolean
}

export interface Output {
  /** How many unused, unexpired regular key packages the caller now has on the server (the last-resort one not counted), so the client knows when to publish more. */
  available?: number
}
