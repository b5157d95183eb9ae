// Generated from lexicons/blue.catbird.mls.getSubscriptionTicket.json by scripts/gen-lexicon-types.ts. Do not edit.

export type Params = Record<string, never>

export interface Input {
  /** Subscribe to this conversation only (the caller must be a current member). */
  convoId?: string
}

export interface Output {
  /** The ticket: pass it as the ticket parameter of subscribeConvoEvents. */
  ticket: string
  /** The WebSocket URL to connect to. */
  endpoint: string
  /** The ticket is refused after this (within seconds). */
  expiresAt: string
}
