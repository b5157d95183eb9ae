import { sql } from 'kysely'
import type { Db } from '../db/index.js'
import { invalidRequest } from '../xrpc/errors.js'
import { checkCommit, lockConvoForMember, storeCommit, type Commit, type StoredCommit } from './commits.js'
import { notMember } from './errors.js'
import { transact } from './util.js'
import { admitWelcome, type Welcome } from './welcomes.js'

/** What a membership change did: the epoch after it, and the commit it stored (to announce). */
export interface ChangeResult {
  newEpoch: number
  stored?: StoredCommit
}

export interface AddMembersArgs {
  convoId: string
  caller: string
  dids: string[]
  /** The commit adding them; required when a DID is new. */
  commit?: Commit
  welcome?: Welcome
  maxMembers: number
  welcomeRetentionDays: number
}

/**
 * Adds the DIDs that are not current members, with the commit that adds
 * them and the Welcome that admits them. Naturally idempotent: when all
 * already are members and no new commit comes, nothing changes; the same
 * commit sent again is answered as the first time.
 */
export async function addMembers(db: Db, args: AddMembersArgs): Promise<ChangeResult & { added: string[] }> {
  return transact(db, async (trx) => {
    const { convo, isMember } = await lockConvoForMember(trx, args.convoId, args.caller)
    if (!isMember) throw notMember()
    const retried = args.commit && (await checkCommit(trx, convo, args.caller, args.commit))
    if (retried) return { newEpoch: retried.newEpoch, added: [] }
    const current = await trx
      .selectFrom('member')
      .select('did')
      .where('convo_id', '=', args.convoId)
      .where('left_at', 'is', null)
      .execute()
    const currentDids = new Set(current.map((m) => m.did))
    const added = [...new Set(args.dids)].filter((did) => !currentDids.has(did))
    if (added.length === 0) {
      if (args.commit) {
        throw invalidRequest('AlreadyMember', 'Every DID is already a member; a commit that adds no one goes through sendMessage')
      }
      return { newEpoch: convo.epoch, added }
    }
    if (currentDids.size + added.length > args.maxMembers) {
      throw invalidRequest('TooManyMembers', `A conversation can have at most ${args.maxMembers} members`)
    }
    await admitWelcome(trx, {
      convoId: args.convoId,
      cipherSuite: convo.cipher_suite,
      caller: args.caller,
      added,
      epoch: convo.epoch,
      welcome: args.welcome,
      retentionDays: args.welcomeRetentionDays,
    })
    if (!args.commit) {
      throw invalidRequest(undefined, 'commit is required: a Welcome follows the commit that adds its members')
    }
    const stored = await storeCommit(trx, { convoId: args.convoId, sender: args.caller, commit: args.commit })
    await trx
      .insertInto('member')
      // They see the messages after the commit that added them: the first they can read.
      .values(added.map((did) => ({ convo_id: args.convoId, did, added_by: args.caller, joined_seq: stored.seq })))
      // Someone who left and is added again starts over from now.
      .onConflict((oc) =>
        oc.columns(['convo_id', 'did']).doUpdateSet({
          joined_at: sql`now()`,
          joined_seq: stored.seq,
          left_at: null,
          added_by: args.caller,
        }),
      )
      .execute()
    return { newEpoch: stored.newEpoch, added, stored }
  })
}

export interface RemoveMemberArgs {
  convoId: string
  caller: string
  target: string
  /** The commit of the removal; it advances the epoch. */
  commit?: Commit
}

/**
 * Removes `target` (the caller itself when leaving). A member cannot commit
 * its own removal (RFC 9420), so it leaves without a commit and a remaining
 * member commits the removal afterwards: that commit is stored and advances
 * the epoch although the target has already left. Naturally idempotent:
 * leaving again, or removing someone who left without a commit, changes
 * nothing; the same commit sent again is answered as the first time.
 */
export async function removeMember(db: Db, args: RemoveMemberArgs): Promise<ChangeResult & { removed: boolean }> {
  return transact(db, async (trx) => {
    const self = args.target === args.caller
    if (self && args.commit) {
      throw invalidRequest(
        undefined,
        'A member cannot commit its own removal: leave without a commit, and a remaining member commits the removal',
      )
    }
    const { convo, isMember, wasMember } = await lockConvoForMember(trx, args.convoId, args.caller)
    // A repeated leave comes from someone who is no longer a member.
    if (self && !isMember && wasMember) return { newEpoch: convo.epoch, removed: false }
    if (!isMember) throw notMember()
    const retried = args.commit && (await checkCommit(trx, convo, args.caller, args.commit))
    if (retried) return { newEpoch: retried.newEpoch, removed: false }

    const target = self
      ? { left_at: null }
      : await trx
          .selectFrom('member')
          .select('left_at')
          .where('convo_id', '=', args.convoId)
          .where('did', '=', args.target)
          .executeTakeFirst()
    if (!target) {
      throw invalidRequest('NotMember', `${args.target} is not a member of this conversation`)
    }
    const removed = target.left_at === null
    // Gone already and nothing to commit: a harmless repeat.
    if (!removed && !args.commit) return { newEpoch: convo.epoch, removed }
    if (removed) await markLeft(trx, args.convoId, args.target)
    if (!args.commit) {
      await trx.updateTable('convo').set({ last_activity_at: sql`now()` }).where('id', '=', args.convoId).execute()
      return { newEpoch: convo.epoch, removed }
    }
    const stored = await storeCommit(trx, { convoId: args.convoId, sender: args.caller, commit: args.commit })
    return { newEpoch: stored.newEpoch, removed, stored }
  })
}

/** `did` leaves: no longer a member, unless it is the last one; a Welcome it never used goes. */
async function markLeft(trx: Db, convoId: string, did: string): Promise<void> {
  const { count } = await trx
    .selectFrom('member')
    .select((eb) => eb.fn.countAll<number>().as('count'))
    .where('convo_id', '=', convoId)
    .where('left_at', 'is', null)
    .executeTakeFirstOrThrow()
  if (Number(count) <= 1) {
    throw invalidRequest('LastMember', 'The last member cannot leave the conversation')
  }
  await trx
    .updateTable('member')
    .set({ left_at: sql`now()` })
    .where('convo_id', '=', convoId)
    .where('did', '=', did)
    .execute()
  // A Welcome the removed member never used is of no use to anyone now.
  await trx
    .deleteFrom('welcome_delivery')
    .where('convo_id', '=', convoId)
    .where('recipient_did', '=', did)
    .where('state', '<>', 'consumed')
    .execute()
}
