/**
 * A conversation's policy: who may add and remove members, and its largest
 * size, enforced by addMembers and the removals (members.ts); every member
 * reads it, admins change it. What this server cannot honour (invites, an
 * admin's approval of new members) cannot be turned on.
 */
import { sql } from 'kysely'
import type { ConvoPolicy, Db } from '../db/schema.js'
import { transact } from '../db/transaction.js'
import type { PolicyView } from '../lexicon/types/blue.catbird.mls.updatePolicy.js'
import { recordAdminAction } from './adminActions.js'
import { invalidRequest, notAdmin, notMember } from './errors.js'
import { DEFAULT_MEMBERSHIP_RULES, lockForChange } from './members.js'
import { requireMember } from './membership.js'
import { iso } from './timestamps.js'

/** The largest conversation the lexicons can describe. */
const LEXICON_MAX_MEMBERS = 1000

export interface PolicyFields {
  allowInvites?: boolean | undefined
  adminOnlyInvites?: boolean | undefined
  allowMemberAdd?: boolean | undefined
  allowMemberRemove?: boolean | undefined
  requireAdminApproval?: boolean | undefined
  maxMembers?: number | undefined
}

/** A stored policy's row, or the default one (set by no one). */
type PolicyRow = Omit<ConvoPolicy, 'convo_id' | 'updated_by'> & { updated_by: string | null }

/** The policy of a conversation that has none stored: set at its creation, by no one. */
const defaultRow = (createdAt: Date): PolicyRow => ({
  allow_invites: false,
  admin_only_invites: true,
  allow_member_add: DEFAULT_MEMBERSHIP_RULES.allowMemberAdd,
  allow_member_remove: DEFAULT_MEMBERSHIP_RULES.allowMemberRemove,
  require_admin_approval: false,
  max_members: DEFAULT_MEMBERSHIP_RULES.maxMembers,
  updated_at: createdAt,
  updated_by: null,
})

/**
 * `serverMax`: MAX_MEMBERS_PER_CONVO, the limit a policy without its own (or
 * with a larger one) has. The conversation is named by its group id, as the
 * client-era methods name conversations.
 */
function toPolicyView(groupId: string, row: PolicyRow, serverMax: number): PolicyView {
  return {
    convoId: groupId.toLowerCase(),
    allowInvites: row.allow_invites,
    adminOnlyInvites: row.admin_only_invites,
    allowMemberAdd: row.allow_member_add,
    allowMemberRemove: row.allow_member_remove,
    requireAdminApproval: row.require_admin_approval,
    maxMembers: Math.min(row.max_members ?? serverMax, serverMax, LEXICON_MAX_MEMBERS),
    updatedAt: iso(row.updated_at),
    ...(row.updated_by ? { updatedBy: row.updated_by } : {}),
  }
}

async function storedPolicy(db: Db, convoId: string): Promise<PolicyRow> {
  const { rows } = await sql<PolicyRow>`
    SELECT p.allow_invites, p.admin_only_invites, p.allow_member_add, p.allow_member_remove,
           p.require_admin_approval, p.max_members, p.updated_at, p.updated_by, c.created_at
    FROM convo c LEFT JOIN convo_policy p ON p.convo_id = c.id WHERE c.id = ${convoId}`.execute(db)
  const row = rows[0] as (PolicyRow & { created_at: Date }) | undefined
  if (!row) throw new Error(`conversation ${convoId} vanished`)
  return row.updated_at === null ? defaultRow(row.created_at) : row
}

/** A current member reads the policy. */
export async function getPolicy(
  db: Db,
  args: { convoId: string; caller: string; serverMax: number },
): Promise<PolicyView> {
  const { convo } = await requireMember(db, args.convoId, args.caller)
  return toPolicyView(convo.group_id, await storedPolicy(db, convo.id), args.serverMax)
}

/** What the server cannot do is refused, rather than stored as if it were. */
function requireHonourable(fields: PolicyFields): void {
  if (fields.allowInvites) {
    throw invalidRequest(undefined, 'allowInvites: this server has no invites (createInvite is not implemented)')
  }
  if (fields.requireAdminApproval) {
    throw invalidRequest(
      undefined,
      "requireAdminApproval: this server cannot hold new members for an admin's approval; turn allowMemberAdd off to let only admins add",
    )
  }
}

/**
 * An admin changes the fields given and keeps the others. maxMembers may not
 * be below the current number of members, nor above the server's limit
 * (400 InvalidMaxMembers). Under the conversation's lock, so that no add
 * slips past a new limit.
 */
export async function updatePolicy(
  db: Db,
  args: { convoId: string; caller: string; fields: PolicyFields; serverMax: number },
): Promise<PolicyView> {
  const { fields } = args
  if (Object.values(fields).every((value) => value === undefined)) {
    throw invalidRequest('NoFieldsProvided', 'Give at least one policy field to change')
  }
  return transact(db, async (trx) => {
    const convo = await lockForChange(trx, args.convoId, [])
    if (convo.standing(args.caller) !== 'member') throw notMember()
    if (!convo.admins.includes(args.caller)) throw notAdmin('only admins change its policy')
    requireHonourable(fields)
    const { maxMembers } = fields
    if (maxMembers !== undefined && (maxMembers < convo.members.length || maxMembers > args.serverMax)) {
      throw invalidRequest(
        'InvalidMaxMembers',
        `maxMembers must be between the current number of members (${convo.members.length}) and this server's limit (${args.serverMax})`,
      )
    }
    const current = await storedPolicy(trx, convo.id)
    const next = {
      allow_invites: fields.allowInvites ?? current.allow_invites,
      admin_only_invites: fields.adminOnlyInvites ?? current.admin_only_invites,
      allow_member_add: fields.allowMemberAdd ?? current.allow_member_add,
      allow_member_remove: fields.allowMemberRemove ?? current.allow_member_remove,
      require_admin_approval: fields.requireAdminApproval ?? current.require_admin_approval,
      max_members: maxMembers ?? current.max_members,
    }
    const { rows } = await sql<PolicyRow>`
      WITH touched AS (UPDATE convo SET last_activity_at = now() WHERE id = ${convo.id})
      INSERT INTO convo_policy (convo_id, allow_invites, admin_only_invites, allow_member_add, allow_member_remove,
                                require_admin_approval, max_members, updated_by)
      VALUES (${convo.id}, ${next.allow_invites}, ${next.admin_only_invites}, ${next.allow_member_add},
              ${next.allow_member_remove}, ${next.require_admin_approval}, ${next.max_members}, ${args.caller})
      ON CONFLICT (convo_id) DO UPDATE SET
        allow_invites = EXCLUDED.allow_invites, admin_only_invites = EXCLUDED.admin_only_invites,
        allow_member_add = EXCLUDED.allow_member_add, allow_member_remove = EXCLUDED.allow_member_remove,
        require_admin_approval = EXCLUDED.require_admin_approval, max_members = EXCLUDED.max_members,
        -- The inserted row's time: Citus refuses a function in ON CONFLICT's SET.
        updated_at = EXCLUDED.updated_at, updated_by = EXCLUDED.updated_by
      RETURNING *`.execute(trx)
    await recordAdminAction(trx, { convoId: convo.id, actor: args.caller, action: 'update_policy' })
    return toPolicyView(convo.group_id, rows[0] as PolicyRow, args.serverMax)
  })
}
