import { sql } from 'kysely'
import { executeOnShard, onShard } from '../db/delegated.js'
import type { Convo, Db } from '../db/schema.js'
import { byShape } from '../db/statement.js'
import type { Step } from '../db/steps.js'
import { assertTransaction, transact } from '../db/transaction.js'
import { checkCommit, commitMessage, type Commit, type StoredCommit } from './commits.js'
import { recordMembershipChanges, recordRoleChange } from './convoEvents.js'
import { convoNotFound, invalidRequest, notAdmin, notMember } from './errors.js'
import {
  messageShape,
  messageSteps,
  messageValues,
  SENT_COLUMNS,
  sentValues,
  toSentMessage,
  type MessageShape,
  type MessageValues,
  type SentRow,
} from './messages.js'
import { recordAdminAction } from './adminActions.js'
import type { BlockVerdict } from './blocks.js'
import { checkRemoval, type KeptTree, type RemovalCommit } from './removal.js'
import {
  admissionSteps,
  admissionValues,
  admittedRefs,
  checkAdmission,
  checkAdmitted,
  type AdmissionValues,
  type CheckedAdmission,
  type ReservedWelcome,
} from './admission.js'
import { queueWelcomePushStep, type PushQueueing } from './pushQueue.js'

/** What a membership change did: the epoch after it, and the commit and membership events it stored (to announce). */
export interface ChangeResult {
  newEpoch: number
  stored?: StoredCommit
  /** The event ids of the members' joining or leaving (convoEvents.ts). */
  events: number[]
}

/** Where a DID stands in a conversation. */
export type Standing = 'member' | 'left' | 'stranger'

/**
 * What a conversation's policy says of membership changes (no policy row:
 * DEFAULT_MEMBERSHIP_RULES): whether members who are not admins may add and
 * remove members, and its largest size (null: the server's limit alone).
 */
export interface MembershipRules {
  allowMemberAdd: boolean
  allowMemberRemove: boolean
  maxMembers: number | null
}

/** Any member adds; only admins remove others; the server's size limit. */
export const DEFAULT_MEMBERSHIP_RULES: MembershipRules = {
  allowMemberAdd: true,
  allowMemberRemove: false,
  maxMembers: null,
}

/** A conversation locked for a membership change, with its current members, their roles and its rules. */
export interface LockedConvo extends Pick<Convo, 'id' | 'group_id' | 'cipher_suite' | 'epoch'> {
  /** The current members' DIDs. */
  members: string[]
  /** The current admins' and moderators' DIDs. */
  admins: string[]
  moderators: string[]
  rules: MembershipRules
  standing(did: string): Standing
}

/**
 * Locks the conversation row for an epoch, membership or role change and
 * reads its members, their roles and its policy, in one statement. Every
 * such change holds this lock and updates the row, so the members this
 * statement read (from its snapshot, taken before it waited for the lock)
 * are current unless the row changed in the meantime: then they are read
 * again, under the lock now held.
 */
export async function lockForChange(trx: Db, convoId: string, dids: string[]): Promise<LockedConvo> {
  assertTransaction(trx)
  for (;;) {
    const { rows } = await sql<
      Pick<Convo, 'id' | 'group_id' | 'cipher_suite' | 'epoch'> & {
        fresh: boolean
        members: string[]
        admins: string[]
        moderators: string[]
        departed: string[]
        allow_member_add: boolean | null
        allow_member_remove: boolean | null
        max_members: number | null
      }
    >`
      SELECT c.id, c.group_id, c.cipher_suite, c.epoch,
             c.xmin = (SELECT xmin FROM convo WHERE id = ${convoId}) AS fresh,
             ARRAY(SELECT did FROM member WHERE convo_id = ${convoId} AND left_at IS NULL) AS members,
             ARRAY(SELECT did FROM member WHERE convo_id = ${convoId} AND left_at IS NULL AND role = 'admin') AS admins,
             ARRAY(SELECT did FROM member WHERE convo_id = ${convoId} AND left_at IS NULL AND role = 'moderator') AS moderators,
             ARRAY(SELECT did FROM member WHERE convo_id = ${convoId} AND left_at IS NOT NULL AND did = ANY(${dids}::text[])) AS departed,
             p.allow_member_add, p.allow_member_remove, p.max_members
      FROM convo c LEFT JOIN convo_policy p ON p.convo_id = c.id
      WHERE c.id = ${convoId}
      FOR UPDATE OF c`.execute(trx)
    const row = rows[0]
    if (!row) throw convoNotFound()
    if (!row.fresh) continue
    const { fresh: _fresh, departed, allow_member_add, allow_member_remove, max_members, ...convo } = row
    const members = new Set(convo.members)
    return {
      ...convo,
      rules:
        allow_member_add === null || allow_member_remove === null
          ? DEFAULT_MEMBERSHIP_RULES
          : { allowMemberAdd: allow_member_add, allowMemberRemove: allow_member_remove, maxMembers: max_members },
      standing: (did) => (members.has(did) ? 'member' : departed.includes(did) ? 'left' : 'stranger'),
    }
  }
}

/** One membership change: what its single write stores. */
export interface Change {
  convoId: string
  caller: string
  /** The commit of the change, stored as storeMessage stores one (the caller is its sender). */
  commit?: Commit
  /** DIDs who become members with the commit, reading from the messages after it. */
  join?: string[]
  /** The DID who leaves (no longer a member: a Welcome it never used goes, its devices are out, their additions cancelled). */
  leave?: string
  admission?: CheckedAdmission
  /** Push is on: the commit (if asked) and the Welcome are queued to be pushed. */
  push?: PushQueueing | undefined
}

/** The shape of a change's write: one write per shape. */
interface ChangeShape {
  commit: MessageShape | undefined
  join: boolean
  leave: boolean
  admit: boolean
  /** The Welcome is queued to be pushed to the members it adds. */
  pushWelcome: boolean
}

type ChangeValues = MessageValues &
  AdmissionValues & {
    caller: string
    joining: string[] | null
    leaving: string | null
  }

const changeStatement = byShape(
  (shape: ChangeShape) => {
    const name = [
      'change',
      shape.commit
        ? `commit${shape.commit.groupInfo ? '_with_group_info' : ''}${shape.commit.push ? '_pushed' : ''}`
        : 'touch',
      ...(shape.join ? ['join'] : []),
      ...(shape.leave ? ['leave'] : []),
      ...(shape.admit ? ['admit'] : []),
      ...(shape.pushWelcome ? ['welcome_pushed'] : []),
    ].join('_')
    return onShard<ChangeValues, Partial<SentRow> & { admitted: string[] | null }>(
      name,
      { shardKey: 'convoId', inTransaction: true },
      (v, refs) => {
        const steps: Step[] = shape.commit
          ? messageSteps(shape.commit, v)
          : // A change without a commit still counts as activity.
            [{ name: 'touched', update: 'convo', set: sql`last_activity_at = now()`, where: sql`id = ${v.convoId}` }]
        if (shape.join) {
          steps.push({
            name: 'joined',
            insert: 'member',
            uses: ['inserted'],
            each: { alias: 'j', rows: sql`unnest(${v.joining}::text[]) AS j(did)` },
            values: { convo_id: v.convoId, did: sql`j.did`, added_by: v.caller, joined_seq: sql`inserted.seq` },
            // Someone who left and is added again starts over from now.
            tail: sql`ON CONFLICT (convo_id, did) DO UPDATE SET
              joined_at = EXCLUDED.joined_at, joined_seq = EXCLUDED.joined_seq, left_at = NULL, added_by = EXCLUDED.added_by`,
          })
        }
        if (shape.leave) {
          steps.push(
            {
              name: 'departed',
              update: 'member',
              // A role ends with the membership: someone who comes back is a member again.
              set: sql`left_at = now(), role = 'member', promoted_at = NULL, promoted_by = NULL`,
              where: sql`convo_id = ${v.convoId} AND did = ${v.leaving} AND left_at IS NULL`,
            },
            // A Welcome the removed member never used is of no use to anyone now.
            {
              name: 'unwelcomed',
              delete: 'welcome_delivery',
              where: sql`convo_id = ${v.convoId} AND recipient_did = ${v.leaving} AND state <> 'consumed'`,
            },
            // None of its devices is in the group now (the commit removed all of the member's leaves).
            {
              name: 'devices_gone',
              delete: 'member_device',
              where: sql`convo_id = ${v.convoId} AND user_did = ${v.leaving}`,
            },
            // Its new devices are no longer to be added.
            {
              name: 'additions_cancelled',
              update: 'pending_device_addition',
              set: sql`status = 'cancelled', settled_at = now(), settled_by = 'left'`,
              where: sql`convo_id = ${v.convoId} AND user_did = ${v.leaving} AND status IN ('pending', 'in_progress')`,
            },
          )
        }
        if (shape.admit) steps.push(...admissionSteps(v))
        if (shape.pushWelcome) {
          // At the commit that added them (no push if it was not stored), or where the conversation is.
          if (!shape.commit) {
            steps.push({ name: 'at_last', select: sql`last_seq AS seq`, from: 'convo', where: sql`id = ${v.convoId}` })
          }
          steps.push(queueWelcomePushStep(v, shape.commit ? 'inserted' : 'at_last'))
        }
        const admitted = shape.admit ? admittedRefs(refs) : sql`NULL`
        return {
          steps,
          result: shape.commit
            ? {
                columns: { ...SENT_COLUMNS, admitted: 'text[]' },
                rows: [{ from: 'inserted', values: { ...sentValues(refs), admitted } }],
              }
            : { columns: { id: 'uuid', admitted: 'text[]' }, rows: [{ values: { id: sql`NULL`, admitted } }] },
        }
      },
    )
  },
  (shape) =>
    `${shape.commit ? `${shape.commit.commit}/${shape.commit.groupInfo}/${shape.commit.push}` : '-'}/${shape.join}/${shape.leave}/${shape.admit}/${shape.pushWelcome}`,
)

/**
 * Stores a membership change in one statement, inside the transaction that
 * locked the conversation (lockForChange) and checked the change: the
 * commit, the members who join or leave, the Welcome admitting the joiners.
 * Every table it names is the conversation's (its key packages were reserved
 * before: reserveWelcome), so on Citus it runs on the conversation's node,
 * with the rest of the transaction. The admission is checked after
 * (checkAdmitted); a refusal throws, and the transaction rolls back.
 */
export async function applyChange(trx: Db, change: Change): Promise<StoredCommit | undefined> {
  const { convoId, caller, commit, join, leave, admission, push } = change
  if (join && !commit) throw new Error('members join by a commit')
  const stored = commit && commitMessage(convoId, caller, commit, { push })
  const write = changeStatement({
    commit: stored && messageShape(stored),
    join: join !== undefined,
    leave: leave !== undefined,
    admit: admission !== undefined,
    pushWelcome: admission !== undefined && push !== undefined,
  })
  // A shape's statement binds only the values it has parameters for.
  const values = {
    ...(stored && messageValues(stored)),
    ...(admission && admissionValues(admission)),
    convoId,
    caller,
    joining: join ?? null,
    leaving: leave ?? null,
  } as ChangeValues
  const { rows } = await executeOnShard(trx, write, values)
  const row = rows[0]
  if (!row) throw new Error(`conversation ${convoId} changed under its row lock`)
  if (admission) checkAdmitted(admission, row.admitted ?? [])
  return commit && { ...toSentMessage(row as SentRow), newEpoch: commit.epoch + 1 }
}

export interface AddMembersArgs {
  convoId: string
  caller: string
  dids: string[]
  /** The commit adding them; required when a DID is new. */
  commit?: Commit
  /** The Welcome admitting them, its key packages reserved (reserveWelcome). */
  welcome?: ReservedWelcome | undefined
  /** What checking the adds for Bluesky blocks found (checkAdds). */
  blocks?: BlockVerdict
  maxMembers: number
  welcomeRetentionDays: number
  push?: PushQueueing | undefined
}

/**
 * Adds the DIDs that are not current members, with the commit that adds
 * them and the Welcome that admits them. A commit that adds no user (an
 * empty `dids`: the client-era clients send their key updates and their
 * additions of members' new devices so) is stored as it is, with the
 * Welcome of those devices when one comes. Naturally idempotent: when all
 * already are members and no new commit comes, nothing changes; the same
 * commit sent again is answered as the first time.
 */
export async function addMembers(db: Db, args: AddMembersArgs): Promise<ChangeResult & { added: string[] }> {
  return transact(db, async (trx) => {
    const convo = await lockForChange(trx, args.convoId, [args.caller])
    if (convo.standing(args.caller) !== 'member') throw notMember()
    const retried = args.commit && (await checkCommit(trx, convo, args.caller, args.commit))
    if (retried) return { newEpoch: retried.newEpoch, added: [], events: [] }
    const added = [...new Set(args.dids)].filter((did) => convo.standing(did) !== 'member')
    if (added.length === 0 && !args.commit) return { newEpoch: convo.epoch, added, events: [] }
    // Members named again with a commit and no Welcome: a mistake, not an addition.
    if (added.length === 0 && args.dids.length > 0 && !args.welcome) {
      throw invalidRequest(
        'AlreadyMember',
        'Every DID is already a member; a commit that adds no one comes with no DID (or through sendMessage)',
      )
    }
    if (!convo.rules.allowMemberAdd && !convo.admins.includes(args.caller)) {
      throw notAdmin("only admins add members to this conversation (its policy's allowMemberAdd is off)")
    }
    const maxMembers = Math.min(args.maxMembers, convo.rules.maxMembers ?? Infinity)
    if (convo.members.length + added.length > maxMembers) {
      throw invalidRequest('TooManyMembers', `This conversation can have at most ${maxMembers} members`)
    }
    if (args.blocks?.refusal) throw args.blocks.refusal
    const admission = checkAdmission({
      convoId: args.convoId,
      cipherSuite: convo.cipher_suite,
      caller: args.caller,
      added,
      members: convo.members,
      epoch: convo.epoch,
      welcome: args.welcome,
      retentionDays: args.welcomeRetentionDays,
    })
    if (!args.commit) {
      throw invalidRequest(undefined, 'commit is required: a Welcome follows the commit that adds its members')
    }
    const stored = (await applyChange(trx, {
      convoId: args.convoId,
      caller: args.caller,
      commit: args.commit,
      ...(added.length ? { join: added } : {}),
      ...(admission ? { admission } : {}),
      push: args.push,
    })) as StoredCommit
    const events = await recordMembershipChanges(
      trx,
      args.convoId,
      stored.newEpoch,
      added.map((did) => ({ did, action: 'joined', actor: args.caller })),
    )
    return { newEpoch: stored.newEpoch, added, stored, events }
  })
}

export interface RemoveMemberArgs {
  convoId: string
  caller: string
  target: string
  /** The commit of the removal; it advances the epoch. */
  commit?: Commit
  push?: PushQueueing | undefined
  /**
   * removeMember: what the commit shows of its proposals and the tree the
   * server keeps; the commit must remove exactly the target's leaves (checkRemoval).
   */
  removal?: { commit: RemovalCommit; tree: KeptTree }
  /** Why, for the admins' log. */
  reason?: string | undefined
}

/**
 * Removes `target` (the caller itself when leaving). A member cannot commit
 * its own removal (RFC 9420), so it leaves without a commit and a remaining
 * member commits the removal afterwards: that commit is stored and advances
 * the epoch although the target has already left. Naturally idempotent:
 * leaving again, or removing someone who left without a commit, changes
 * nothing; the same commit sent again is answered as the first time. The
 * last member cannot leave.
 *
 * Removing another current member takes an admin (or, where the policy
 * allows members to remove, a member removing someone who is not an admin)
 * and is logged; committing the removal of someone who already left takes
 * any member. When the last admin goes, the longest-standing moderator, or
 * else member, becomes admin. All under the conversation's lock: two
 * removals, or a removal and a role change, are one after the other.
 */
export async function removeMember(db: Db, args: RemoveMemberArgs): Promise<ChangeResult & { removed: boolean }> {
  const self = args.target === args.caller
  if (self && args.commit) {
    throw invalidRequest(
      undefined,
      'A member cannot commit its own removal: leave without a commit, and a remaining member commits the removal',
    )
  }
  return transact(db, async (trx) => {
    const convo = await lockForChange(trx, args.convoId, [args.caller, args.target])
    const caller = convo.standing(args.caller)
    // A repeated leave comes from someone who is no longer a member.
    if (self && caller === 'left') return { newEpoch: convo.epoch, removed: false, events: [] }
    if (caller !== 'member') throw notMember()
    const retried = args.commit && (await checkCommit(trx, convo, args.caller, args.commit))
    if (retried) return { newEpoch: retried.newEpoch, removed: false, events: [] }
    const target = convo.standing(args.target)
    if (target === 'stranger') {
      throw invalidRequest('NotMember', `${args.target} is not a member of this conversation`)
    }
    const removed = target === 'member'
    if (removed && !self) requireRemover(convo, args.caller, args.target)
    if (args.removal && args.commit) {
      checkRemoval(args.removal.commit, args.removal.tree, { ...args, epoch: convo.epoch })
    }
    // Gone already and nothing to commit: a harmless repeat.
    if (!removed && !args.commit) return { newEpoch: convo.epoch, removed, events: [] }
    if (removed && convo.members.length <= 1) {
      throw invalidRequest('LastMember', 'The last member cannot leave the conversation')
    }
    const stored = await applyChange(trx, {
      convoId: args.convoId,
      caller: args.caller,
      ...(args.commit ? { commit: args.commit } : {}),
      ...(removed ? { leave: args.target } : {}),
      push: args.push,
    })
    if (removed && !self) {
      await recordAdminAction(trx, {
        convoId: args.convoId,
        actor: args.caller,
        action: 'remove_member',
        target: args.target,
        reason: args.reason,
      })
    }
    const newEpoch = stored?.newEpoch ?? convo.epoch
    const events = removed
      ? await recordMembershipChanges(trx, args.convoId, newEpoch, [
          self
            ? { did: args.target, action: 'left' }
            : { did: args.target, action: 'removed', actor: args.caller, reason: args.reason },
        ])
      : []
    if (removed && convo.admins.length === 1 && convo.admins[0] === args.target) {
      const heir = await appointHeir(trx, args.convoId)
      if (heir) events.push(await recordRoleChange(trx, args.convoId, newEpoch, { did: heir, action: 'promotedAdmin' }))
    }
    return { newEpoch, removed, events, ...(stored ? { stored } : {}) }
  })
}

/** Who may remove `target`: an admin; a member who is not, when the policy lets members remove members who are not admins. */
function requireRemover(convo: LockedConvo, caller: string, target: string): void {
  if (convo.admins.includes(caller)) return
  if (!convo.rules.allowMemberRemove) {
    throw notAdmin("only admins remove other members (its policy's allowMemberRemove is off)")
  }
  if (convo.admins.includes(target)) throw notAdmin(`only admins remove an admin (${target} is one)`)
}

/**
 * The last admin left: the longest-standing moderator, or else member,
 * becomes admin, so that a conversation with members always has one. No
 * admin promoted it (promoted_by stays null); the log says the server did.
 */
async function appointHeir(trx: Db, convoId: string): Promise<string | undefined> {
  const { rows } = await sql<{ did: string }>`
    UPDATE member SET role = 'admin', promoted_at = now(), promoted_by = NULL
    WHERE convo_id = ${convoId} AND did = (
      SELECT did FROM member WHERE convo_id = ${convoId} AND left_at IS NULL
      ORDER BY role = 'moderator' DESC, joined_at, did LIMIT 1)
    RETURNING did`.execute(trx)
  const heir = rows[0]
  if (heir) await recordAdminAction(trx, { convoId, action: 'succession', target: heir.did })
  return heir?.did
}
