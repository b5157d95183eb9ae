// Generated from lexicons/blue.catbird.mls.getKeyPackageHistory.json by scripts/gen-lexicon-types.ts. Do not edit.

export interface Params {
  /** Largest number of entries to return. */
  limit?: number
  /** Resume after this position: the cursor of the previous page. */
  cursor?: string
}

export interface Output {
  /** Key packages, newest first. */
  history: Array<KeyPackageHistoryEntry>
  /** Present when there is more: pass it as cursor for the next page. */
  cursor?: string
}

/** One key package of the caller and what became of it. */
export interface KeyPackageHistoryEntry {
  /** The key package, by its hash (hex). */
  packageId: string
  /** When it was published. */
  createdAt: string
  /** When it was handed out. */
  consumedAt?: string
  /** The MLS group id (hex) of the conversation whose Welcome named it. */
  consumedForConvo?: string
  /** That conversation's name. */
  consumedForConvoName?: string
  /** The device of the member who took it. */
  consumedByDevice?: string
  /** The device it belongs to (the one whose MLS key signed it), when known. */
  deviceId?: string
  /** Its MLS cipher suite. */
  cipherSuite: string
}
