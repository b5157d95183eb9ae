import { sql } from 'kysely'
import type { Db } from '../db/index.js'
import { invalidRequest } from '../xrpc/errors.js'
import { epochMismatch, notMember } from './errors.js'
import { lockConvoForMember } from './convos.js'
import { transact } from './util.js'
import { settleWelcomeByActivity, storeWelcome } from './welcomes.js'

export interface CommitArgs {
  /** MLS commit bytes; when given, the epoch advances by one. */
  commit?: Uint8Array
  /** The epoch the commit was built on; a commit for a past epoch is refused. */
  expectedEpoch?: number
}

/**
 * Records a membership change: the conversation's activity time and, with a
 * commit, the commit itself and the next epoch. The caller holds the
 * conversation's row lock, so the epoch read is current; the (convo, epoch)
 * primary key backs that up: one commit per epoch.
 */
async function recordChange(
  trx: Db,
  convo: { id: string; epoch: number },
  sender: string,
  args: CommitArgs,
): Promise<number> {
  const newEpoch = args.commit ? convo.epoch + 1 : convo.epoch
  if (args.commit) {
    await trx
      .insertInto('commit')
      .values({ convo_id: convo.id, epoch: convo.epoch, sender_did: sender, data: args.commit })
      .execute()
    // Committing proves the sender has joined the group.
    await settleWelcomeByActivity(convo.id, sender).execute(trx)
  }
  await trx
    .updateTable('convo')
    .set({ epoch: newEpoch, last_activity_at: sql`now()` })
    .where('id', '=', convo.id)
    .execute()
  return newEpoch
}

function checkEpoch(current: number, args: CommitArgs): void {
  if (args.commit && args.expectedEpoch !== undefined && args.expectedEpoch !== current) {
    throw epochMismatch(current, args.expectedEpoch)
  }
}

export interface AddMembersArgs extends CommitArgs {
  convoId: string
  caller: string
  dids: string[]
  welcome?: Uint8Array
  maxMembers: number
  welcomeRetentionDays: number
}

/**
 * Adds the DIDs that are not current members. Naturally idempotent: when
 * all already are, nothing changes (no commit stored, epoch kept).
 */
export async function addMembers(
  db: Db,
  args: AddMembersArgs,
): Promise<{ newEpoch: number; added: string[] }> {
  return transact(db, async (trx) => {
    const { convo, isMember } = await lockConvoForMember(trx, args.convoId, args.caller)
    if (!isMember) throw notMember()
    const current = await trx
      .selectFrom('member')
      .select('did')
      .where('convo_id', '=', args.convoId)
      .where('left_at', 'is', null)
      .execute()
    const currentDids = new Set(current.map((m) => m.did))
    const added = [...new Set(args.dids)].filter((did) => !currentDids.has(did))
    if (added.length === 0) return { newEpoch: convo.epoch, added }

    checkEpoch(convo.epoch, args)
    if (currentDids.size + added.length > args.maxMembers) {
      throw invalidRequest(
        'TooManyMembers',
        `A conversation can have at most ${args.maxMembers} members`,
      )
    }
    await trx
      .insertInto('member')
      .values(
        added.map((did) => ({
          convo_id: args.convoId,
          did,
          added_by: args.caller,
          joined_seq: convo.last_seq,
        })),
      )
      // Someone who left and is added again starts over from now.
      .onConflict((oc) =>
        oc.columns(['convo_id', 'did']).doUpdateSet({
          joined_at: sql`now()`,
          joined_seq: convo.last_seq,
          left_at: null,
          added_by: args.caller,
        }),
      )
      .execute()
    if (args.welcome) {
      await storeWelcome(trx, {
        convoId: args.convoId,
        recipients: added,
        data: args.welcome,
        retentionDays: args.welcomeRetentionDays,
      })
    }
    const newEpoch = await recordChange(trx, convo, args.caller, args)
    return { newEpoch, added }
  })
}

export interface RemoveMemberArgs extends CommitArgs {
  convoId: string
  caller: string
  target: string
}

/**
 * Removes `target` (the caller itself when leaving). Naturally idempotent:
 * removing someone who already left succeeds and changes nothing.
 */
export async function removeMember(
  db: Db,
  args: RemoveMemberArgs,
): Promise<{ newEpoch: number; removed: boolean }> {
  return transact(db, async (trx) => {
    const self = args.target === args.caller
    const { convo, isMember, wasMember } = await lockConvoForMember(trx, args.convoId, args.caller)
    // A repeated leave comes from someone who is no longer a member.
    if (self && !isMember && wasMember) return { newEpoch: convo.epoch, removed: false }
    if (!isMember) throw notMember()

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
    if (target.left_at !== null) return { newEpoch: convo.epoch, removed: false }

    checkEpoch(convo.epoch, args)
    const { count } = await trx
      .selectFrom('member')
      .select((eb) => eb.fn.countAll<number>().as('count'))
      .where('convo_id', '=', args.convoId)
      .where('left_at', 'is', null)
      .executeTakeFirstOrThrow()
    if (Number(count) <= 1) {
      throw invalidRequest('LastMember', 'The last member cannot leave the conversation')
    }
    await trx
      .updateTable('member')
      .set({ left_at: sql`now()` })
      .where('convo_id', '=', args.convoId)
      .where('did', '=', args.target)
      .execute()
    // A Welcome the removed member never used is of no use to anyone now.
    await trx
      .deleteFrom('welcome_delivery')
      .where('convo_id', '=', args.convoId)
      .where('recipient_did', '=', args.target)
      .where('state', '<>', 'consumed')
      .execute()
    const newEpoch = await recordChange(trx, convo, args.caller, args)
    return { newEpoch, removed: true }
  })
}
