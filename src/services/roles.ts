/**
 * Admins and moderators. A conversation's creator is its first admin;
 * admins make and unmake admins and moderators (moderators may read
 * reports). A conversation with members always has an admin: the last one
 * cannot be demoted, and when the last one leaves the server appoints an
 * heir (members.ts). Every change holds the conversation's lock
 * (lockForChange) and updates its row, so that two changes never decide on
 * the same roles: two admins demoting each other leave one admin.
 */
import { sql } from 'kysely'
import type { Db, Role } from '../db/schema.js'
import { transact } from '../db/transaction.js'
import { recordAdminAction } from './adminActions.js'
import { recordRoleChange, type RoleAction } from './convoEvents.js'
import { conflict, invalidRequest, notAdmin, notMember } from './errors.js'
import { lockForChange, type LockedConvo } from './members.js'

/** A role given or taken, as the admins' log and role-change events tell it. */
export interface RoleChange {
  convoId: string
  did: string
  /** The role the member has now. */
  role: Role
  /** The admin (or moderator stepping down) who did it. */
  by: string
  /** When the role was given; none when the member is a plain member again. */
  promotedAt: Date | null
  /** The event of it (convoEvents.ts), to announce. */
  event: number
}

interface RoleArgs {
  convoId: string
  caller: string
  target: string
}

const roleOf = (convo: LockedConvo, did: string): Role =>
  convo.admins.includes(did) ? 'admin' : convo.moderators.includes(did) ? 'moderator' : 'member'

/** The caller is a current member (403 NotMember) and, unless `allowed` says otherwise, an admin (403 NotAdmin). */
function requireCaller(convo: LockedConvo, caller: string, why: string, allowed = false): void {
  if (convo.standing(caller) !== 'member') throw notMember()
  if (!allowed && !convo.admins.includes(caller)) throw notAdmin(why)
}

function requireTargetMember(convo: LockedConvo, target: string): void {
  if (convo.standing(target) !== 'member') {
    throw invalidRequest('NotMember', `${target} is not a member of this conversation`)
  }
}

/**
 * Gives `target` its new role, with when and by whom (none for a plain
 * member), logs it, records its event and marks the conversation changed
 * (lockForChange's freshness check).
 */
async function setRole(
  trx: Db,
  convo: LockedConvo,
  args: RoleArgs,
  role: Role,
  action: RoleActionKind,
): Promise<RoleChange> {
  const promoted = role !== 'member'
  // The time comes back in the row: Citus refuses a function in RETURNING.
  const { rows } = await sql<{ promoted_at: Date | null }>`
    WITH touched AS (UPDATE convo SET last_activity_at = now() WHERE id = ${args.convoId})
    UPDATE member SET role = ${role},
      promoted_at = ${promoted ? sql`now()` : sql`NULL`}, promoted_by = ${promoted ? args.caller : null}
    WHERE convo_id = ${args.convoId} AND did = ${args.target} AND left_at IS NULL
    RETURNING promoted_at`.execute(trx)
  const row = rows[0]
  if (!row) throw new Error(`member ${args.target} of ${args.convoId} changed under its conversation's lock`)
  await recordAdminAction(trx, { convoId: args.convoId, actor: args.caller, action, target: args.target })
  const event = await recordRoleChange(trx, args.convoId, convo.epoch, {
    did: args.target,
    action: ROLE_EVENT_ACTIONS[action],
    actor: args.caller,
  })
  return { convoId: args.convoId, did: args.target, role, by: args.caller, promotedAt: row.promoted_at, event }
}

/** A change to admin or moderator: the role was given at `promotedAt`. */
type Promotion = RoleChange & { promotedAt: Date }

function asPromotion(change: RoleChange): Promotion {
  const { promotedAt } = change
  if (promotedAt === null) throw new Error(`${change.did} was promoted without a time`)
  return { ...change, promotedAt }
}

type RoleActionKind = 'promote_admin' | 'demote_admin' | 'promote_moderator' | 'demote_moderator'

/** How each change is told in its event. */
const ROLE_EVENT_ACTIONS: Record<RoleActionKind, RoleAction> = {
  promote_admin: 'promotedAdmin',
  demote_admin: 'demotedAdmin',
  promote_moderator: 'promotedModerator',
  demote_moderator: 'demotedModerator',
}

/** An admin makes a current member (a moderator included) an admin. */
export function promoteAdmin(db: Db, args: RoleArgs): Promise<Promotion> {
  return transact(db, async (trx) => {
    const convo = await lockForChange(trx, args.convoId, [])
    requireCaller(convo, args.caller, 'only admins make admins')
    requireTargetMember(convo, args.target)
    if (roleOf(convo, args.target) === 'admin') throw conflict('AlreadyAdmin', `${args.target} is an admin already`)
    return asPromotion(await setRole(trx, convo, args, 'admin', 'promote_admin'))
  })
}

/** An admin takes admin rights from an admin (or from itself), never from the last one. */
export function demoteAdmin(db: Db, args: RoleArgs): Promise<RoleChange> {
  return transact(db, async (trx) => {
    const convo = await lockForChange(trx, args.convoId, [])
    requireCaller(convo, args.caller, 'only admins demote admins')
    requireTargetMember(convo, args.target)
    if (roleOf(convo, args.target) !== 'admin') {
      throw invalidRequest('NotAdminTarget', `${args.target} is not an admin of this conversation`)
    }
    if (convo.admins.length <= 1) {
      throw conflict('LastAdmin', `${args.target} is the last admin: make another member admin first`)
    }
    return setRole(trx, convo, args, 'member', 'demote_admin')
  })
}

/** An admin makes a current member who is not an admin a moderator. */
export function promoteModerator(db: Db, args: RoleArgs): Promise<Promotion> {
  return transact(db, async (trx) => {
    const convo = await lockForChange(trx, args.convoId, [])
    requireCaller(convo, args.caller, 'only admins make moderators')
    requireTargetMember(convo, args.target)
    const role = roleOf(convo, args.target)
    if (role === 'admin') {
      throw invalidRequest('IsAdmin', `${args.target} is an admin, who has every right of a moderator`)
    }
    if (role === 'moderator') throw conflict('AlreadyModerator', `${args.target} is a moderator already`)
    return asPromotion(await setRole(trx, convo, args, 'moderator', 'promote_moderator'))
  })
}

/** An admin takes moderator rights from a moderator, or a moderator from itself. */
export function demoteModerator(db: Db, args: RoleArgs): Promise<RoleChange> {
  return transact(db, async (trx) => {
    const convo = await lockForChange(trx, args.convoId, [])
    const steppingDown = args.caller === args.target && convo.moderators.includes(args.caller)
    requireCaller(convo, args.caller, 'only admins demote moderators (a moderator may step down)', steppingDown)
    requireTargetMember(convo, args.target)
    if (roleOf(convo, args.target) !== 'moderator') {
      throw invalidRequest('NotModerator', `${args.target} is not a moderator of this conversation`)
    }
    return setRole(trx, convo, args, 'member', 'demote_moderator')
  })
}
