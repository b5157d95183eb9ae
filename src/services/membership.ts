import { createHash } from 'node:crypto'
import type { Convo, Db } from '../db/schema.js'
import { execute, statement } from '../db/statement.js'
import { convoNotFound, notMember } from './errors.js'

/**
 * A conversation's id, derived from its MLS group id (hex, any case): the
 * first 128 bits of sha256 of the lowercase hex, as hex. So a group is
 * created once by a primary-key conflict, on its conversation's shard.
 * Conversations created before migration 006 keep the ids they had (13
 * characters of base32).
 */
export const convoIdOf = (groupId: string): string =>
  createHash('sha256').update(groupId.toLowerCase()).digest('hex').slice(0, 32)

const HEX = /^[0-9a-fA-F]+$/

/**
 * The conversation a client names by `convoId`: seed-era clients send its id;
 * client-era clients send its MLS group id in hex (their conversation view has
 * no id). The two may look alike (16-byte group ids are 32 hex digits, as ids
 * are), so the id is the one that exists of these two (an id that is also the
 * hex of another conversation's group id would be a sha256 collision).
 */
export const convoIdCandidates = (convoId: string): [asId: string, asGroupId: string] => [
  convoId,
  HEX.test(convoId) ? convoIdOf(convoId) : convoId,
]

/**
 * The conversation `convoId` names when a request carries an MLS message of
 * group `groupId` (lowercase hex): the group's conversation when the client
 * named it by its group id, else the id as sent. Known without a query, so a
 * write stays one statement on one shard.
 */
export const convoIdFor = (convoId: string, groupId: string | undefined): string =>
  groupId !== undefined && convoId.toLowerCase() === groupId ? convoIdOf(groupId) : convoId

const convoLookup = statement('find_convo', (v: { asId: string; asGroupId: string }, db) =>
  db.selectFrom('convo').select('id').where('id', 'in', [v.asId, v.asGroupId]),
)

/** The id of the conversation `convoId` names (convoIdCandidates), or 404. */
export async function findConvoId(db: Db, convoId: string): Promise<string> {
  const [asId, asGroupId] = convoIdCandidates(convoId)
  const { rows } = await execute(db, convoLookup, { asId, asGroupId })
  const found = rows.find((row) => row.id === asId) ?? rows[0]
  if (!found) throw convoNotFound()
  return found.id
}

const groupIdRead = statement('convo_group_id', (v: { convoId: string }, db) =>
  db.selectFrom('convo').select('group_id').where('id', '=', v.convoId),
)

/** Group ids by conversation id, kept (a conversation's group id never changes), up to a bound. */
const groupIds = new Map<string, string>()
const MAX_GROUP_IDS = 100_000

/** The group id of `convoId` when this instance has read it already (see groupIdOf). */
export const knownGroupId = (convoId: string): string | undefined => groupIds.get(convoId)

/**
 * The MLS group id (lowercase hex) of the conversation with id `convoId`:
 * how client-era clients name it. Read once per instance (for the events of
 * a subscription, each named so).
 */
export async function groupIdOf(db: Db, convoId: string): Promise<string> {
  const known = groupIds.get(convoId)
  if (known !== undefined) return known
  const { rows } = await execute(db, groupIdRead, { convoId })
  if (!rows[0]) throw convoNotFound()
  const groupId = rows[0].group_id.toLowerCase()
  if (groupIds.size >= MAX_GROUP_IDS) groupIds.clear()
  groupIds.set(convoId, groupId)
  return groupId
}

/** A caller's standing in a conversation it is a member of. */
export interface Membership {
  convo: Pick<Convo, 'id' | 'group_id' | 'cipher_suite' | 'epoch' | 'last_seq'>
  /** Messages up to this sequence number were sent before the caller joined. */
  joinedSeq: number
}

const memberRead = statement('require_member', (v: { asId: string; asGroupId: string; did: string }, db) =>
  db
    .selectFrom('convo')
    .leftJoin('member', (join) => join.onRef('member.convo_id', '=', 'convo.id').on('member.did', '=', v.did))
    .select([
      'convo.id',
      'convo.group_id',
      'convo.cipher_suite',
      'convo.epoch',
      'convo.last_seq',
      'member.joined_seq',
      'member.left_at',
    ])
    .where('convo.id', 'in', [v.asId, v.asGroupId]),
)

/**
 * The caller's standing in the conversation `convoId` names (by its id or
 * its group id: convoIdCandidates): 404 when it does not exist, 403 when the
 * caller is not a current member (a former member included). Every read of a
 * conversation starts here, and takes the conversation's id from it.
 */
export async function requireMember(db: Db, convoId: string, did: string): Promise<Membership> {
  const [asId, asGroupId] = convoIdCandidates(convoId)
  const { rows } = await execute(db, memberRead, { asId, asGroupId, did })
  const row = rows.find((r) => r.id === asId) ?? rows[0]
  if (!row) throw convoNotFound()
  if (row.joined_seq === null || row.left_at !== null) throw notMember()
  return { convo: row, joinedSeq: row.joined_seq }
}
