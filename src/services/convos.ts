import { sql } from 'kysely'
import { executeOnShard, onShard } from '../db/delegated.js'
import type { Convo, Db, Role } from '../db/schema.js'
import { byShape } from '../db/statement.js'
import { transact } from '../db/transaction.js'
import type { ConvoView, MemberView } from '../lexicon/types/blue.catbird.mls.defs.js'
import { checkAdmission, type ReservedWelcome } from './admission.js'
import type { BlockVerdict } from './blocks.js'
import type { Commit, StoredCommit } from './commits.js'
import { conflict, invalidRequest, requireGroup } from './errors.js'
import { requireGroupInfoOf, type GroupInfo } from './groupInfo.js'
import { recordMembershipChanges } from './convoEvents.js'
import { applyChange } from './members.js'
import { convoIdOf } from './membership.js'
import type { PushQueueing } from './pushQueue.js'
import { iso } from './timestamps.js'

async function convoViews(db: Db, convos: Convo[]): Promise<ConvoView[]> {
  if (convos.length === 0) return []
  const convoIds = convos.map((c) => c.id)
  const [members, inConvo] = await Promise.all([
    db
      .selectFrom('member')
      .select(['convo_id', 'did', 'joined_at', 'role', 'promoted_at', 'promoted_by'])
      .where('convo_id', 'in', convoIds)
      .where('left_at', 'is', null)
      .orderBy('convo_id')
      .orderBy('joined_at')
      .orderBy('did')
      .execute(),
    db
      .selectFrom('member_device')
      .select(['convo_id', 'user_did', 'device_id'])
      .where('convo_id', 'in', convoIds)
      .execute(),
  ])
  // A member's one device known in the conversation is named (a deleted device no longer is).
  const only = new Map<string, string | null>()
  for (const d of inConvo) {
    const key = `${d.convo_id} ${d.user_did}`
    only.set(key, only.has(key) ? null : d.device_id)
  }
  const named = [...only.entries()].flatMap(([key, deviceId]) =>
    deviceId === null ? [] : [{ userDid: key.slice(key.indexOf(' ') + 1), deviceId }],
  )
  const devices = named.length
    ? await db
        .selectFrom('device')
        .select(['user_did', 'device_id', 'name'])
        .where((eb) =>
          eb.or(named.map((n) => eb.and([eb('user_did', '=', n.userDid), eb('device_id', '=', n.deviceId)]))),
        )
        .execute()
    : []
  const deviceNames = new Map(devices.map((d) => [`${d.user_did} ${d.device_id}`, d.name]))
  const byConvo = new Map<string, JoinedMember[]>()
  for (const m of members) {
    const list = byConvo.get(m.convo_id) ?? []
    const deviceId = only.get(`${m.convo_id} ${m.did}`)
    const deviceName = deviceId ? deviceNames.get(`${m.did} ${deviceId}`) : undefined
    list.push({
      did: m.did,
      joinedAt: m.joined_at,
      role: m.role,
      promotedAt: m.promoted_at,
      promotedBy: m.promoted_by,
      ...(deviceId && deviceName !== undefined ? { deviceId, deviceName } : {}),
    })
    byConvo.set(m.convo_id, list)
  }
  return convos.map((c) => toConvoView(c, byConvo.get(c.id) ?? []))
}

/** A current member, as the member table knows it, with its one device in the conversation when that is known. */
interface JoinedMember {
  did: string
  joinedAt: Date
  role: Role
  promotedAt: Date | null
  promotedBy: string | null
  deviceId?: string
  deviceName?: string
}

/**
 * Members are users, one view each: `did` is the user's DID (the identity
 * every device's MLS credential carries, and what the client-era clients
 * find themselves by among the members), its one device in the conversation
 * named when the server knows it. Admins and moderators say when they
 * became one, and who made them (no one: the creator, and an admin the
 * server chose when the last one left).
 */
const toMemberView = ({ joinedAt, role, promotedAt, promotedBy, ...m }: JoinedMember): MemberView => ({
  ...m,
  userDid: m.did,
  joinedAt: iso(joinedAt),
  isAdmin: role === 'admin',
  ...(role === 'moderator' ? { isModerator: true } : {}),
  ...(promotedAt ? { promotedAt: iso(promotedAt) } : {}),
  ...(promotedBy ? { promotedBy } : {}),
})

function toConvoView(c: Convo, members: JoinedMember[]): ConvoView {
  const metadata = {
    ...(c.name !== null ? { name: c.name } : {}),
    ...(c.description !== null ? { description: c.description } : {}),
  }
  return {
    id: c.id,
    groupId: c.group_id,
    creator: c.creator_did,
    members: members.map(toMemberView),
    epoch: c.epoch,
    cipherSuite: c.cipher_suite,
    createdAt: iso(c.created_at),
    ...(c.last_message_at ? { lastMessageAt: iso(c.last_message_at) } : {}),
    ...(Object.keys(metadata).length ? { metadata } : {}),
  }
}

export interface CreateConvoArgs {
  creator: string
  /** Hex, as the client sent it. */
  groupId: string
  cipherSuite: string
  initialMembers: string[]
  /** The Welcome admitting the initial members, its key packages reserved (reserveWelcome). */
  welcome?: ReservedWelcome | undefined
  /** What checking the initial members for Bluesky blocks found (checkAdds). */
  blocks?: BlockVerdict
  /** The commit that added the initial members. */
  commit?: Commit
  /** The GroupInfo of the epoch the conversation starts at (after `commit`, with which it is stored). */
  groupInfo?: GroupInfo
  /** The creator's MLS epoch after creating the group (the later upstream field). */
  currentEpoch?: number
  name?: string
  description?: string
  welcomeRetentionDays: number
  /** Push is on: the Welcome (and the commit, if asked) are queued to be pushed. */
  push?: PushQueueing | undefined
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

/** A conversation row's columns, with their types. */
const CONVO_COLUMN_TYPES = {
  id: 'text',
  group_id: 'text',
  creator_did: 'text',
  cipher_suite: 'text',
  epoch: 'bigint',
  last_seq: 'bigint',
  name: 'text',
  description: 'text',
  created_at: 'timestamptz',
  last_activity_at: 'timestamptz',
  last_message_at: 'timestamptz',
  retained_from_at: 'timestamptz',
  purged_seq: 'bigint',
  purged_epoch: 'bigint',
} satisfies Record<keyof Convo, string>

interface CreatedValues {
  id: string
  groupId: string
  /** Lowercase: how conversations created before migration 006 are found. */
  lowerGroupId: string
  creator: string
  cipherSuite: string
  /** The epoch it is created at: the commit's, which moves it on by one when it is stored. */
  createdEpoch: number
  name: string | null
  description: string | null
  memberDids: string[]
  addedBy: Array<string | null>
  joinedSeqs: number[]
  groupInfoEpoch: number | null
  groupInfoData: Uint8Array | null
}

/**
 * The write that creates a conversation and its members, and its GroupInfo
 * when no commit comes to bring it (`describedWithoutCommit`). The same
 * group again (or one whose conversation predates derived ids) stores
 * nothing.
 */
const createStatement = byShape(
  (describedWithoutCommit: boolean) =>
    onShard<CreatedValues, Convo & { member_dids: string[] }>(
      `create_convo${describedWithoutCommit ? '_with_group_info' : ''}`,
      { shardKey: 'id', inTransaction: true },
      (v, refs) => ({
        steps: [
          // A reference table: every node has it whole.
          {
            name: 'legacy',
            select: sql`1 AS one`,
            from: 'convo_group_before_006',
            where: sql`group_id = ${v.lowerGroupId}`,
          },
          {
            name: 'created',
            insert: 'convo',
            unless: ['legacy'],
            values: {
              id: v.id,
              group_id: v.groupId,
              creator_did: v.creator,
              cipher_suite: v.cipherSuite,
              epoch: v.createdEpoch,
              name: v.name,
              description: v.description,
            },
            tail: sql`ON CONFLICT (id) DO NOTHING`,
            returning: sql`*`,
          },
          {
            name: 'joined',
            insert: 'member',
            uses: ['created'],
            // The invited read from after the commit that added them: the conversation's first message.
            each: {
              alias: 'm',
              rows: sql`unnest(${v.memberDids}::text[], ${v.addedBy}::text[], ${v.joinedSeqs}::bigint[]) AS m(did, added_by, joined_seq)`,
            },
            values: {
              convo_id: v.id,
              did: sql`m.did`,
              added_by: sql`m.added_by`,
              joined_seq: sql`m.joined_seq`,
              // Its creator is its first admin.
              role: sql`CASE WHEN m.did = ${v.creator} THEN 'admin' ELSE 'member' END`,
              promoted_at: sql`CASE WHEN m.did = ${v.creator} THEN created.created_at END`,
            },
            returning: sql`did`,
            keep: { did: 'text' },
          },
          ...(describedWithoutCommit
            ? [
                {
                  name: 'described',
                  insert: 'group_info',
                  after: ['created'],
                  values: { convo_id: v.id, epoch: v.groupInfoEpoch, data: v.groupInfoData, stored_by: v.creator },
                },
              ]
            : []),
        ],
        result: {
          columns: { ...CONVO_COLUMN_TYPES, member_dids: 'text[]' },
          rows: [
            {
              from: 'created',
              values: {
                ...Object.fromEntries(
                  Object.keys(CONVO_COLUMN_TYPES).map((column) => [column, sql.raw(`created.${column}`)]),
                ),
                member_dids: sql`ARRAY(SELECT did FROM ${refs.rows('joined')} ORDER BY did)`,
              },
            },
          ],
        },
      }),
    ),
  (describedWithoutCommit) => String(describedWithoutCommit),
)

/**
 * Creates a conversation with its members, and with the commit that added
 * them and the Welcome that admits them when there is one: two statements
 * in one transaction (the conversation and its members; then the commit and
 * the Welcome, as any membership change stores them). Its GroupInfo, if one
 * came, is stored by whichever statement makes its epoch.
 */
export async function createConvo(
  db: Db,
  args: CreateConvoArgs,
): Promise<{ convo: ConvoView; stored?: StoredCommit; events: number[] }> {
  const id = convoIdOf(args.groupId)
  const invited = [...new Set(args.initialMembers)].filter((did) => did !== args.creator)
  const epoch = creationEpoch(args)
  if (args.commit) requireGroup(args.groupId, args.commit.groupId)
  const { groupInfo } = args
  if (groupInfo) {
    const start = { groupId: args.groupId, cipherSuite: args.cipherSuite, epoch }
    requireGroupInfoOf(start, groupInfo, 'the epoch the conversation starts at')
  }
  if (args.blocks?.refusal) throw args.blocks.refusal
  const admission = checkAdmission({
    convoId: id,
    cipherSuite: args.cipherSuite,
    caller: args.creator,
    added: invited,
    // The creator's other devices may be in the first Welcome too.
    members: [args.creator],
    epoch: epoch - 1,
    welcome: args.welcome,
    retentionDays: args.welcomeRetentionDays,
  })
  const dids = [args.creator, ...invited]
  const describedWithoutCommit = groupInfo !== undefined && !args.commit
  return transact(db, async (trx) => {
    const { rows } = await executeOnShard(trx, createStatement(describedWithoutCommit), {
      id,
      groupId: args.groupId,
      lowerGroupId: args.groupId.toLowerCase(),
      creator: args.creator,
      cipherSuite: args.cipherSuite,
      createdEpoch: args.commit ? args.commit.epoch : epoch,
      name: args.name ?? null,
      description: args.description ?? null,
      memberDids: dids,
      addedBy: dids.map((did) => (did === args.creator ? null : args.creator)),
      joinedSeqs: dids.map((did) => (did !== args.creator && args.commit ? 1 : 0)),
      groupInfoEpoch: groupInfo ? epoch : null,
      groupInfoData: groupInfo?.data ?? null,
    })
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
            push: args.push,
          })
        : undefined
    const events = await recordMembershipChanges(
      trx,
      id,
      epoch,
      memberDids.map((did) =>
        did === args.creator ? { did, action: 'joined' } : { did, action: 'joined', actor: args.creator },
      ),
    )
    // Everyone joined with the conversation (the same transaction time).
    const members = memberDids.map((did) => ({
      did,
      joinedAt: convo.created_at,
      role: did === args.creator ? ('admin' as const) : ('member' as const),
      promotedAt: did === args.creator ? convo.created_at : null,
      promotedBy: null,
    }))
    return { convo: toConvoView({ ...convo, epoch }, members), events, ...(stored ? { stored } : {}) }
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
