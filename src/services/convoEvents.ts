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
import { execute, statement } from '../db/statement.js'
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

/**
 * Stores events of one kind; each is placed after the conversation's last
 * message as it stands in the calling transaction (after a change's commit).
 */
const record = statement(
  'record_convo_events',
  (v: { convoId: string; kind: ConvoEventKind; dids: string[]; bodies: string[] }) => sql<{ event_id: number }>`
    INSERT INTO convo_event (convo_id, kind, did, after_seq, body)
    SELECT convo.id, ${v.kind}, e.did, convo.last_seq, e.body
    FROM convo, unnest(${v.dids}::text[], ${v.bodies}::jsonb[]) AS e(did, body)
    WHERE convo.id = ${v.convoId}
    RETURNING event_id`,
)

async function recordEvents(
  db: Db,
  convoId: string,
  kind: ConvoEventKind,
  events: Array<{ did: string; body: Record<string, unknown> }>,
): Promise<number[]> {
  if (events.length === 0) return []
  const { rows } = await execute(db, record, {
    convoId,
    kind,
    dids: events.map((e) => e.did),
    bodies: events.map((e) => JSON.stringify(e.body)),
  })
  return rows.map((row) => row.event_id).sort((a, b) => a - b)
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
