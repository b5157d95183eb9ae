/**
 * Events of a conversation that are not messages, stored in the event log
 * (convo_event, migration 009) by the write that makes them, in its
 * transaction; the caller announces their ids to the hub once it commits
 * (src/events/hub.ts says how they reach streams). Each is one statement on
 * the conversation's shard. Their bodies are the subscription's events'
 * fields (lexicon names), less the cursor and convoId, which streams add.
 */
import { sql } from 'kysely'
import type { ConvoEventKind, Db } from '../db/schema.js'
import { executeOnShard, onShard } from '../db/delegated.js'
import { execute, statement } from '../db/statement.js'
import { transact } from '../db/transaction.js'
import { requireMember } from './membership.js'

/** How a member's standing changed: the subscription's membershipChangeEvent `action`. */
export type MembershipAction = 'joined' | 'left' | 'removed' | 'kicked'

export interface MembershipChange {
  did: string
  action: MembershipAction
  /** Who added or removed the member (not for `left`). */
  actor?: string | undefined
  reason?: string | undefined
}

type RecordValues = { convoId: string; kind: ConvoEventKind; dids: string[]; bodies: string[] }

/**
 * Stores events of one kind; each is placed after the conversation's last
 * message as it stands in the calling transaction (after a change's commit).
 * A delegated write: on Citus, an INSERT ... SELECT whose ids come from the
 * sequence is pulled through the coordinator and committed in two phases.
 */
const record = onShard<RecordValues, { event_ids: string[] }>(
  'convo_events',
  { shardKey: 'convoId', inTransaction: true },
  (v, refs) => ({
    steps: [
      { name: 'logged', select: sql`last_seq`, from: 'convo', where: sql`id = ${v.convoId}` },
      {
        name: 'recorded',
        insert: 'convo_event',
        uses: ['logged'],
        each: { alias: 'e', rows: sql`unnest(${v.dids}::text[], ${v.bodies}::jsonb[]) AS e(did, body)` },
        values: {
          convo_id: v.convoId,
          kind: v.kind,
          did: sql`e.did`,
          after_seq: sql`logged.last_seq`,
          body: sql`e.body`,
        },
        returning: sql`event_id`,
        keep: { event_id: 'bigint' },
      },
    ],
    result: {
      columns: { event_ids: 'bigint[]' },
      rows: [{ values: { event_ids: sql`ARRAY(SELECT event_id FROM ${refs.rows('recorded')})` } }],
    },
  }),
)

async function recordEvents(
  db: Db,
  convoId: string,
  kind: ConvoEventKind,
  events: Array<{ did: string; body: Record<string, unknown> }>,
): Promise<number[]> {
  if (events.length === 0) return []
  const values = { convoId, kind, dids: events.map((e) => e.did), bodies: events.map((e) => JSON.stringify(e.body)) }
  // Alone (a member's request, a new device's event): in a transaction of its own.
  const { rows } = db.isTransaction
    ? await executeOnShard(db, record, values)
    : await transact(db, (trx) => executeOnShard(trx, record, values))
  // bigint arrays come back as text.
  return (rows[0]?.event_ids ?? []).map(Number).sort((a, b) => a - b)
}

const defined = (fields: Record<string, unknown>) =>
  Object.fromEntries(Object.entries(fields).filter(([, value]) => value !== undefined))

/**
 * Members joined or left, in the transaction that changed them: `epoch` is
 * the conversation's after the change. Answers the events' ids, to announce.
 */
export function recordMembershipChanges(
  trx: Db,
  convoId: string,
  epoch: number,
  changes: MembershipChange[],
): Promise<number[]> {
  return recordEvents(
    trx,
    convoId,
    'membership',
    changes.map(({ did, action, actor, reason }) => ({ did, body: defined({ did, action, actor, reason, epoch }) })),
  )
}

/**
 * A member's role changed (promoteAdmin, demoteAdmin, promoteModerator,
 * demoteModerator; an heir made admin by the server): the subscription's
 * membershipChangeEvent, its `action` saying which, as the lexicon's
 * `action` is open to values beyond joining and leaving.
 */
export type RoleAction = 'promotedAdmin' | 'demotedAdmin' | 'promotedModerator' | 'demotedModerator'

/**
 * A role change, in the transaction that made it: `epoch` is the
 * conversation's (a role change does not change it); no `actor` when the
 * server made it. Answers the event's id, to announce.
 */
export async function recordRoleChange(
  trx: Db,
  convoId: string,
  epoch: number,
  change: { did: string; action: RoleAction; actor?: string | undefined },
): Promise<number> {
  const { did, action, actor } = change
  const [id] = await recordEvents(trx, convoId, 'role', [{ did, body: defined({ did, action, actor, epoch }) }])
  if (id === undefined) throw new Error(`conversation ${convoId} not found for its role change event`)
  return id
}

export interface NewDevice {
  convoId: string
  userDid: string
  deviceId: string
  deviceName?: string | undefined
  /** The pending addition of the device to this conversation. */
  pendingAdditionId: string
}

/**
 * A member's user registered a device that waits to be added to the
 * conversation (its pending addition): the members hear a newDeviceEvent.
 * For registerDevice, once per conversation of the user, in the transaction
 * that makes the pending addition. Answers the event's id, to announce.
 */
export async function recordNewDevice(db: Db, device: NewDevice): Promise<number> {
  const { convoId, userDid, deviceId, deviceName, pendingAdditionId } = device
  const [id] = await recordEvents(db, convoId, 'new_device', [
    {
      did: userDid,
      body: defined({
        userDid,
        deviceId,
        deviceName,
        deviceCredentialDid: `${userDid}#${deviceId}`,
        pendingAdditionId,
      }),
    },
  ])
  if (id === undefined) throw new Error(`conversation ${convoId} not found for its new device event`)
  return id
}

/** What a member may ask of the conversation's other current members. */
type MemberRequest = 'group_info_refresh' | 'readdition'

/** The body of each request's event: who asks, and when. */
const requestBodies: Record<MemberRequest, (did: string, at: string) => Record<string, unknown>> = {
  // groupInfoRefreshRequestedEvent: the members store a fresh GroupInfo (updateGroupInfo).
  group_info_refresh: (did, at) => ({ requestedBy: did, requestedAt: at }),
  // readditionRequestedEvent: one of them adds the member again.
  readdition: (did, at) => ({ userDid: did, requestedAt: at }),
}

const otherMembers = statement('count_other_members', (v: { convoId: string; did: string }, db) =>
  db
    .selectFrom('member')
    .select((eb) => eb.fn.countAll<string>().as('count'))
    .where('convo_id', '=', v.convoId)
    .where('did', '<>', v.did)
    .where('left_at', 'is', null),
)

/**
 * A current member asks the conversation's other current members for
 * something (groupInfoRefresh, readdition): they hear it as an event of the
 * log. Nothing is stored when no one else is a member. Answers the event's
 * id (to announce) and how many members it is for.
 */
export async function askMembers(
  db: Db,
  args: { convoId: string; did: string; request: MemberRequest },
): Promise<{ eventId?: number; activeMembers: number }> {
  const { convo } = await requireMember(db, args.convoId, args.did)
  const { rows } = await execute(db, otherMembers, { convoId: convo.id, did: args.did })
  const activeMembers = Number(rows[0]?.count ?? 0)
  if (activeMembers === 0) return { activeMembers }
  const body = requestBodies[args.request](args.did, new Date().toISOString())
  const [eventId] = await recordEvents(db, convo.id, args.request, [{ did: args.did, body }])
  return { eventId, activeMembers }
}
