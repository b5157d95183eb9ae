import type { Convo, Db } from '../db/schema.js'
import { execute, statement } from '../db/statement.js'
import { convoNotFound, notMember } from './errors.js'

/** A caller's standing in a conversation it is a member of. */
export interface Membership {
  convo: Pick<Convo, 'id' | 'group_id' | 'cipher_suite' | 'epoch' | 'last_seq'>
  /** Messages up to this sequence number were sent before the caller joined. */
  joinedSeq: number
}

const memberRead = statement('require_member', (v: { convoId: string; did: string }, db) =>
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
    .where('convo.id', '=', v.convoId),
)

/**
 * The caller's standing in a conversation: 404 when it does not exist, 403
 * when the caller is not a current member (a former member included). Every
 * read of a conversation starts here.
 */
export async function requireMember(db: Db, convoId: string, did: string): Promise<Membership> {
  const [row] = (await execute(db, memberRead, { convoId, did })).rows
  if (!row) throw convoNotFound()
  if (row.joined_seq === null || row.left_at !== null) throw notMember()
  return { convo: row, joinedSeq: row.joined_seq }
}
