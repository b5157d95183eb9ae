import { createHash } from 'node:crypto'
import { sql } from 'kysely'
import type { Db } from '../db/index.js'
import type { Convo } from '../db/schema.js'
import type { ConvoView, MemberView } from '../lexicon/types/blue.catbird.mls.defs.js'
import { executePrepared } from '../db/prepared.js'
import { transact } from '../db/transact.js'
import type { Commit, StoredCommit } from './commits.js'
import { conflict, convoNotFound, invalidRequest, notMember, requireGroup } from './errors.js'
import { requireGroupInfoOf, type GroupInfo } from './groupInfo.js'
import { applyChange } from './members.js'
import { iso } from './timestamps.js'
import { checkAdmission, type ReservedWelcome } from './welcomes.js'

export interface Membership {
  convo: Pick<Convo, 'id' | 'group_id' | 'cipher_suite' | 'epoch' | 'last_seq'>
  /** Messages up to this sequence number were sent before the caller joined. */
  joinedSeq: number
}

/**
 * The caller's standing in a conversation: 404 when it does not exist, 403
 * when the caller is not a current member (a former member included).
 * getEpoch, getMessages and getCommits start here: a prepared statement.
 */
export async function requireMember(db: Db, convoId: string, did: string): Promise<Membership> {
  const query = db
    .selectFrom('convo')
    .leftJoin('member', (join) => join.onRef('member.convo_id', '=', 'convo.id').on('member.did', '=', did))
    .select([
      'convo.id',
      'convo.group_id',
      'convo.cipher_suite',
      'convo.epoch',
      'convo.last_seq',
      'member.joined_seq',
      'member.left_at',
    ])
    .where('convo.id', '=', convoId)
  const [row] = (await executePrepared(db, 'require_member', query)).rows
  if (!row) throw convoNotFound()
  if (row.joined_seq === null || row.left_at !== null) throw notMember()
  return { convo: row, joinedSeq: row.joined_seq }
}

async function convoViews(db: Db, convos: Convo[]): Promise<ConvoView[]> {
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
  const byConvo = new Map<string, JoinedMember[]>()
  for (const m of members) {
    const list = byConvo.get(m.convo_id) ?? []
    list.push({ did: m.did, joinedAt: iso(m.joined_at) })
    byConvo.set(m.convo_id, list)
  }
  return convos.map((c) => convoView(c, byConvo.get(c.id) ?? []))
}

/** A current member, as the member table knows it. */
type JoinedMember = Pick<MemberView, 'did' | 'joinedAt'>

/**
 * Members are users (no device of theirs is listed apart): did is the
 * user's DID. The creator is the conversation's one admin.
 */
const memberView = (c: Convo, m: JoinedMember): MemberView => ({
  did: m.did,
  userDid: m.did,
  joinedAt: m.joinedAt,
  isAdmin: m.did === c.creator_did,
})

function convoView(c: Convo, members: JoinedMember[]): ConvoView {
  const metadata = {
    ...(c.name !== null ? { name: c.name } : {}),
    ...(c.description !== null ? { description: c.description } : {}),
  }
  return {
    id: c.id,
    groupId: c.group_id,
    creator: c.creator_did,
    members: members.map((m) => memberView(c, m)),
    epoch: c.epoch,
    cipherSuite: c.cipher_suite,
    createdAt: iso(c.created_at),
    ...(c.last_message_at ? { lastMessageAt: iso(c.last_message_at) } : {}),
    ...(Object.keys(metadata).length ? { metadata } : {}),
  }
}

/**
 * A conversation's id, derived from its MLS group id (hex, any case): the
 * first 128 bits of sha256 of the lowercase hex, as hex. So a group is
 * created once by a primary-key conflict, on its conversation's shard
 * (issue 19). Conversations created before migration 006 keep the ids they
 * had (13 characters of base32).
 */
export const convoIdOf = (groupId: string): string =>
  createHash('sha256').update(groupId.toLowerCase()).digest('hex').slice(0, 32)

export interface CreateConvoArgs {
  creator: string
  /** Hex, as the client sent it. */
  groupId: string
  cipherSuite: string
  initialMembers: string[]
  /** The Welcome admitting the initial members, its key packages reserved (reserveWelcome). */
  welcome?: ReservedWelcome
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
      throw invalidRequest(
        'EpochMismatch',
        `currentEpoch ${args.currentEpoch} is not the epoch after the commit (${after})`,
      )
    }
    return after
  }
  if (args.currentEpoch === undefined) return args.welcome ? 1 : 0
  if (args.welcome && args.currentEpoch === 0) {
    throw invalidRequest(
      'EpochMismatch',
      'A Welcome follows the commit that added its members: currentEpoch must be at least 1',
    )
  }
  return args.currentEpoch
}

/** A conversation row's columns, with their types (for createConvo's delegated function). */
const CONVO_COLUMN_LIST = [
  ['id', 'text'],
  ['group_id', 'text'],
  ['creator_did', 'text'],
  ['cipher_suite', 'text'],
  ['epoch', 'bigint'],
  ['last_seq', 'bigint'],
  ['name', 'text'],
  ['description', 'text'],
  ['created_at', 'timestamptz'],
  ['last_activity_at', 'timestamptz'],
  ['last_message_at', 'timestamptz'],
] as const satisfies ReadonlyArray<readonly [keyof Convo, string]>
const CONVO_COLUMNS = CONVO_COLUMN_LIST.map(([column]) => column)
const CONVO_COLUMN_TYPES = CONVO_COLUMN_LIST.map(([column, type]) => `${column} ${type}`).join(', ')

/**
 * Creates a conversation with its members, and with the commit that added
 * them and the Welcome that admits them when there is one: two statements
 * in one transaction (the conversation and its members; then the commit and
 * the Welcome, as any membership change stores them). Its GroupInfo, if one
 * came, is stored by whichever statement makes its epoch.
 */
export async function createConvo(db: Db, args: CreateConvoArgs): Promise<{ convo: ConvoView; stored?: StoredCommit }> {
  const id = convoIdOf(args.groupId)
  const invited = [...new Set(args.initialMembers)].filter((did) => did !== args.creator)
  const epoch = creationEpoch(args)
  if (args.commit) requireGroup(args.groupId, args.commit.groupId)
  const { groupInfo } = args
  if (groupInfo) {
    const start = { groupId: args.groupId, cipherSuite: args.cipherSuite, epoch }
    requireGroupInfoOf(start, groupInfo, 'the epoch the conversation starts at')
  }
  const admission = checkAdmission({
    convoId: id,
    cipherSuite: args.cipherSuite,
    caller: args.creator,
    added: invited,
    epoch: epoch - 1,
    welcome: args.welcome,
    retentionDays: args.welcomeRetentionDays,
  })
  const dids = [args.creator, ...invited]
  const describedWithoutCommit = groupInfo !== undefined && !args.commit
  const statement = sql<Convo & { member_dids: string[] }>`
      WITH created AS (
        INSERT INTO convo (id, group_id, creator_did, cipher_suite, epoch, name, description)
        -- A commit moves it on by one when it is stored. The same group again
        -- (or one whose conversation predates derived ids) stores nothing.
        SELECT ${id}, ${args.groupId}, ${args.creator}, ${args.cipherSuite}, ${args.commit ? args.commit.epoch : epoch},
               ${args.name ?? null}, ${args.description ?? null}
        WHERE NOT EXISTS (SELECT 1 FROM convo_group_before_006 WHERE group_id = ${args.groupId.toLowerCase()})
        ON CONFLICT (id) DO NOTHING
        RETURNING *
      ), joined AS (
        INSERT INTO member (convo_id, did, added_by, joined_seq)
        -- The invited read from after the commit that added them: the conversation's first message.
        SELECT created.id, m.did, m.added_by, m.joined_seq
        FROM created, unnest(${dids}::text[], ${dids.map((did) => (did === args.creator ? null : args.creator))}::text[],
                             ${dids.map((did) => (did !== args.creator && args.commit ? 1 : 0))}::bigint[]) AS m(did, added_by, joined_seq)
        RETURNING did
      )${
        describedWithoutCommit
          ? sql`, described AS (
        -- Its GroupInfo, when no commit comes to bring it (the commit's statement stores it otherwise).
        INSERT INTO group_info (convo_id, epoch, data, stored_by)
        SELECT created.id, ${epoch}, ${groupInfo.data}, ${args.creator} FROM created
      )`
          : sql``
      }
      SELECT ${sql.join(CONVO_COLUMNS.map((column) => sql.ref(`created.${column}`)))},
             ARRAY(SELECT did FROM joined ORDER BY did) AS member_dids
      FROM created`
  return transact(db, async (trx) => {
    // On Citus, a function on the conversation's node, as the rest of the transaction (src/db/delegated.ts).
    const { rows } = await executePrepared(
      trx,
      `create_convo${describedWithoutCommit ? '_with_group_info' : ''}`,
      statement,
      {
        shardKey: id,
        columns: `${CONVO_COLUMN_TYPES}, member_dids text[]`,
        inTransaction: true,
      },
    )
    const row = rows[0]
    // Also the loser of two creates racing on one group id: its insert waits, then yields.
    if (!row) {
      throw conflict('ConvoAlreadyExists', `A conversation for group ${args.groupId} already exists`)
    }
    const { member_dids: memberDids, ...convo } = row
    const stored =
      args.commit || admission
        ? await applyChange(trx, {
            convoId: id,
            caller: args.creator,
            ...(args.commit ? { commit: { ...args.commit, groupInfo } } : {}),
            ...(admission ? { admission } : {}),
          })
        : undefined
    // Everyone joined with the conversation (the same transaction time).
    const members = memberDids.map((did) => ({ did, joinedAt: iso(convo.created_at) }))
    return { convo: convoView({ ...convo, epoch }, members), ...(stored ? { stored } : {}) }
  })
}

/** Cursor: last_activity_at in microseconds and the id, of the last conversation returned. */
function parseConvoCursor(cursor: string): { activityUs: number; id: string } {
  const match = /^(\d{1,17})_([a-z2-7]{13}|[0-9a-f]{32})$/.exec(cursor)
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
    query = query.where(sql<boolean>`(${activityUs}, convo.id) < (${after.activityUs}, ${after.id})`)
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
