// Generated from lexicons/blue.catbird.mls.listInvites.json by scripts/gen-lexicon-types.ts. Do not edit.
import type * as BlueCatbirdMlsCreateInvite from './blue.catbird.mls.createInvite.js'

export interface Params {
  /** Identifier of the conversation. */
  convoId: string
  /** Include revoked invites. */
  includeRevoked?: boolean
}

export interface Output {
  /** The invites, newest first. */
  invites: Array<BlueCatbirdMlsCreateInvite.InviteView>
}
