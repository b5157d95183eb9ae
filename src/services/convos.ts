import { TID } from '@atproto/common-web'
import { sql } from 'kysely'
import type { Db } from '../db/index.js'
import type { Convo } from '../db/schema.js'
import type { ConvoView, MemberView } from '../lexicon/types/blue.catbird.mls.defs.js'
import { conflict, invalidRequest } from '../xrpc/errors.js'
import { storeCommit, type Commit, type StoredCommit } from './commits.js'
import { convoNotFound, notMember, requireGroup } from './errors.js'
import { putGroupInfo, requireGroupInfoOf, type GroupInfo } from './groupInfo.js'
import { iso, transact } from './util.js'
import { admitWelcome, type Welcome } from './welcomes.js'

export interface Membership {
  convo: Pick<Convo, 'id' | 'group_id' | 'cipher_suite' | 'epoch' | 'last_seq'>
  /** Messages up to this sequence number were sent before the caller joined. */
  joinedSeq: number
}

/**
 * The caller's standing in a conversation: 404 when it does not exist, 403
 * when the caller is not a current member (a former member included).
 */
export async function requireMember(db: Db, convoId: string, did: string): Promise<Membership> {
  const row = await db
    .selectFrom('convo')
    .leftJoin('member', (join) =>
      join.onRef('member.convo_id', '=', 'convo.id').on('member.did', '=', did),
    )
    .select(['convo.id', 'convo.group_id', 'convo.cipher_suite', 'convo.epoch', 'convo.last_seq', 'member.joined_seq', 'member.left_at'])
    .where('convo.id', '=', convoId)
    .executeTakeFirst()
  if (!row) throw convoNotFound()
  if (row.joined_seq === null || row.left_at !== null) throw notMember()
  return { convo: row, joinedSeq: row.joined_seq }
}

export async function convoViews(db: Db, convos: Convo[]): Promise<ConvoView[]> {
  if (convos.length === 0) return []
  const members = await db
    .selectFrom('member')
    .select(['convo_id', 'did', 'joined_at'])
    .where(
      'convo_id',
      'in',
      convos.map((c) => c.id),
    )
    .where('left_at', 'is', null)
    .orderBy('convo_id')
    .orderBy('joined_at')
    .orderBy('did')
    .execute()
  const byConvo = new Map<string, MemberView[]>()
  for (const m of members) {
    const list = byConvo.get(m.convo_id) ?? []
    list.push({ did: m.did, joinedAt: iso(m.joined_at) })
    byConvo.set(m.convo_id, list)
  }
  return convos.map((c) => {
    const metadata = {
      ...(c.name !== null ? { name: c.name } : {}),
      ...(c.description !== null ? { description: c.description } : {}),
    }
    return {
      id: c.id,
      groupId: c.group_id,
      creator: c.creator_did,
      members: byConvo.get(c.id) ?? [],
      epoch: c.epoch,
      cipherSuite: c.cipher_suite,
      createdAt: iso(c.created_at),
      ...(c.last_message_at ? { lastMessageAt: iso(c.last_message_at) } : {}),
      ...(Object.keys(metadata).length ? { metadata } : {}),
    }
  })
}

export interface CreateConvoArgs {
  creator: string
  /** Hex, as the client sent it. */
  groupId: string
  cipherSuite: string
  initialMembers: string[]
  welcome?: Welcome
  /** The commit that added the initial members. */
  commit?: Commit
  /** The GroupInfo of the epoch the conversation starts at (after `commit`, with which it is stored). */
  groupInfo?: GroupInfo
  /** The creator's MLS epoch after creating the group (the later upstream field). */
  currentEpoch?: number
  name?: string
  description?: string
  welcomeRetentionDays: number
}

/**
 * The epoch a new conversation starts at: its MLS group's. After `commit`
 * when there is one (currentEpoch, if given, must agree); else currentEpoch;
 * else 1 with a Welcome (RFC 9420: the Welcome follows the commit that added
 * its members, which moved the new group from epoch 0 to 1), and 0 without.
 */
function creationEpoch(args: CreateConvoArgs): number {
  if (args.commit) {
    const after = args.commit.epoch + 1
    if (args.currentEpoch !== undefined && args.currentEpoch !== after) {
      throw invalidRequest('EpochMismatch', `currentEpoch ${args.currentEpoch} is not the epoch after the commit (${after})`)
    }
    return after
  }
  if (args.currentEpoch === undefined) return args.welcome ? 1 : 0
  if (args.welcome && args.currentEpoch === 0) {
    throw invalidRequest('EpochMismatch', 'A Welcome follows the commit that added its members: currentEpoch must be at least 1')
  }
  return args.currentEpoch
}

export async function createConvo(db: Db, args: CreateConvoArgs): Promise<{ convo: ConvoView; stored?: StoredCommit }> {
  const id = TID.nextStr()
  const invited = [...new Set(args.initialMembers)].filter((did) => did !== args.creator)
  const epoch = creationEpoch(args)
  if (args.commit) requireGroup(args.groupId, args.commit.groupId)
  const { groupInfo } = args
  if (groupInfo) {
    const start = { groupId: args.groupId, cipherSuite: args.cipherSuite, epoch }
    requireGroupInfoOf(start, groupInfo, 'the epoch the conversation starts at')
  }
  return transact(db, async (trx) => {
    const convo = await trx
      .insertInto('convo')
      .values({
        id,
        group_id: args.groupId,
        creator_did: args.creator,
        cipher_suite: args.cipherSuite,
        // A commit moves it on by one when it is stored.
        epoch: args.commit ? args.commit.epoch : epoch,
        name: args.name ?? null,
        description: args.description ?? null,
      })
      .onConflict((oc) => oc.column('group_id').doNothing())
      .returningAll()
      .executeTakeFirst()
    // Also the loser of two creates racing on one group id: its insert waits, then yields.
    if (!convo) {
      throw conflict('ConvoAlreadyExists', `A conversation for group ${args.groupId} already exists`)
    }
    const stored = args.commit && (await storeCommit(trx, { convoId: id, sender: args.creator, commit: { ...args.commit, groupInfo } }))
    await trx
      .insertInto('member')
      .values(
        [args.creator, ...invited].map((did) => ({
          convo_id: id,
          did,
          added_by: did === args.creator ? null : args.creator,
          // The invited read from after the commit that added them.
          joined_seq: did === args.creator ? 0 : (stored?.seq ?? 0),
        })),
      )
      .execute()
    await admitWelcome(trx, {
      convoId: id,
      cipherSuite: args.cipherSuite,
      caller: args.creator,
      added: invited,
      epoch: epoch - 1,
      welcome: args.welcome,
      retentionDays: args.welcomeRetentionDays,
    })
    if (groupInfo && !args.commit) await putGroupInfo(trx, { convoId: id, caller: args.creator, info: groupInfo })
    const [view] = await convoViews(trx, [{ ...convo, epoch }])
    return { convo: view as ConvoView, ...(stored ? { stored } : {}) }
  })
}

/** Cursor: last_activity_at in microseconds and the id, of the last conversation returned. */
function parseConvoCursor(cursor: string): { activityUs: number; id: string } {
  const match = /^(\d{1,17})_([a-z2-7]{13})$/.exec(cursor)
  if (!match) throw invalidRequest('InvalidCursor', 'Malformed pagination cursor')
  return { activityUs: Number(match[1]), id: match[2] as string }
}

export async function listConvos(
  db: Db,
  args: { did: string; limit: number; cursor?: string },
): Promise<{ convos: ConvoView[]; cursor?: string }> {
  const after = args.cursor ? parseConvoCursor(args.cursor) : undefined
  const activityUs = sql<number>`(extract(epoch from convo.last_activity_at) * 1000000)::bigint`
  let query = db
    .selectFrom('member')
    .innerJoin('convo', 'convo.id', 'member.convo_id')
    .selectAll('convo')
    .select(activityUs.as('activity_us'))
    .where('member.did', '=', args.did)
    .where('member.left_at', 'is', null)
  if (after) {
    query = query.where(
      sql<boolean>`(${activityUs}, convo.id) < (${after.activityUs}, ${after.id})`,
    )
  }
  const rows = await query
    .orderBy(activityUs, 'desc')
    .orderBy('convo.id', 'desc')
    .limit(args.limit + 1)
    .execute()
  const page = rows.slice(0, args.limit)
  const last = page[page.length - 1]
  return {
    convos: await convoViews(db, page),
    ...(rows.length > args.limit && last ? { cursor: `${last.activity_us}_${last.id}` } : {}),
  }
}
