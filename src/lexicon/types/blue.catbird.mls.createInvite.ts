// Generated from lexicons/blue.catbird.mls.createInvite.json by scripts/gen-lexicon-types.ts. Do not edit.

export type Params = Record<string, never>

export interface Input {
  /** Identifier of the conversation. */
  convoId: string
  /** SHA-256 of the invite's pre-shared key, hex. */
  pskHash: string
  /** Only this DID may use the invite. */
  targetDid?: string
  /** After this the invite cannot be used. */
  expiresAt?: string
  /** How many times the invite may be used (unlimited without). */
  maxUses?: number
}

export interface Output {
  /** Identifier of the invite. */
  inviteId: string
  /** The invite as stored. */
  invite: InviteView
}

/** An invite to a conversation and its use. */
export interface InviteView {
  /** Identifier of the invite. */
  inviteId: string
  /** Identifier of the conversation. */
  convoId: string
  /** The admin who created it. */
  createdBy: string
  /** When it was created. */
  createdAt: string
  /** SHA-256 of the invite's pre-shared key, hex. */
  pskHash: string
  /** Only this DID may use the invite. */
  targetDid?: string
  /** After this the invite cannot be used. */
  expiresAt?: string
  /** How many times the invite may be used. */
  maxUses?: number
  /** How many times it was used. */
  useCount: number
  /** True once revoked. */
  isRevoked: boolean
  /** When it was revoked. */
  revokedAt?: string
  /** The admin who revoked it. */
  revokedBy?: string
}
