// Generated from lexicons/blue.catbird.mls.updatePolicy.json by scripts/gen-lexicon-types.ts. Do not edit.

export type Params = Record<string, never>

export interface Input {
  /** Identifier of the conversation. */
  convoId: string
  /** Invites may be used. */
  allowInvites?: boolean
  /** Only admins may create invites. */
  adminOnlyInvites?: boolean
  /** Members who are not admins may add members. */
  allowMemberAdd?: boolean
  /** Members who are not admins may remove members. */
  allowMemberRemove?: boolean
  /** New members wait for an admin to approve them. */
  requireAdminApproval?: boolean
  /** Largest number of members (not below the current number). */
  maxMembers?: number
}

export interface Output {
  /** The policy after the change. */
  policy: PolicyView
}

/** The policy of a conversation. */
export interface PolicyView {
  /** Identifier of the conversation. */
  convoId: string
  /** Invites may be used. */
  allowInvites: boolean
  /** Only admins may create invites. */
  adminOnlyInvites: boolean
  /** Members who are not admins may add members. */
  allowMemberAdd: boolean
  /** Members who are not admins may remove members. */
  allowMemberRemove: boolean
  /** New members wait for an admin to approve them. */
  requireAdminApproval: boolean
  /** Largest number of members. */
  maxMembers: number
  /** When it last changed. */
  updatedAt: string
  /** The admin who last changed it. */
  updatedBy?: string
}
