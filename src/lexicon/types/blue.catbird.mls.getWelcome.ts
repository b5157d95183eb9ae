// Generated from lexicons/blue.catbird.mls.getWelcome.json by scripts/gen-lexicon-types.ts. Do not edit.

export interface Params {
  /** Identifier of the conversation. */
  convoId: string
  /** The caller's device the Welcome is for (its server id, or its MLS DID `<user DID>#<deviceId>`): a Welcome naming several of the user's devices is delivered to each, and without this the server takes the delivery least taken. */
  deviceId?: string
}

export interface Output {
  /** Identifier of the conversation. */
  convoId: string
  /** The MLS Welcome message, base64-encoded. */
  welcome: string
}
