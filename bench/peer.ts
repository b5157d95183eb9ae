import { randomUUID } from 'node:crypto'
import type pg from 'pg'
import type { Dist } from './dist.js'

/** The arguments of one message to store: what the server reads of a sendMessage request to store it. */
export interface SendArgs {
  convoId: string
  sender: string
  groupId: string
  epoch: number
  ciphertext: Uint8Array
}

const ARG_NAMES = ['convoId', 'sender', 'groupId', 'epoch', 'ciphertext', 'embedType', 'embedUri'] as const
type ArgName = (typeof ARG_NAMES)[number]
/** The message id the server generates for each send (a UUID parameter). */
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

/**
 * The statement the server's sendMessage sends (without a key), compiled
 * once: its text, its prepared statement's name, and which argument each
 * parameter is, found by compiling it with a distinct stand-in per argument.
 */
export function sendStatement(dist: Dist, database: { db: Parameters<Dist['listMessages']>[0] }) {
  const standIns: Record<ArgName, string | number | Uint8Array> = {
    convoId: 'arg:convoId',
    sender: 'arg:sender',
    groupId: 'arg:groupId',
    epoch: 7_654_321,
    ciphertext: new TextEncoder().encode('arg:ciphertext'),
    embedType: 'arg:embedType',
    embedUri: 'arg:embedUri',
  }
  const { name, statement } = dist.storeMessageStatement({
    kind: 'message',
    convoId: standIns.convoId as string,
    sender: standIns.sender as string,
    groupId: standIns.groupId as string,
    epoch: standIns.epoch as number,
    ciphertext: standIns.ciphertext as Uint8Array,
    embedType: standIns.embedType as string,
    embedUri: standIns.embedUri as string,
  })
  const compiled = statement.compile(database.db)
  const order = compiled.parameters.map((value): ArgName | 'messageId' => {
    if (typeof value === 'string' && UUID.test(value)) return 'messageId'
    const arg = ARG_NAMES.find((n) => standIns[n] === value)
    if (!arg) throw new Error(`sendMessage's statement has a parameter the bench does not know: ${String(value)}`)
    return arg
  })
  return {
    name,
    text: compiled.sql,
    order,
    /** The parameter values for `args` (no embed: the load sends none), with a new message id. */
    values: (args: SendArgs): unknown[] =>
      order.map((arg) =>
        arg === 'messageId' ? randomUUID() : arg === 'embedType' || arg === 'embedUri' ? null : args[arg],
      ),
  }
}

export type SendStatement = ReturnType<typeof sendStatement>

/** Runs the statement as the named prepared statement, straight on a pg pool. */
export async function sendPrepared(pool: pg.Pool, statement: SendStatement, args: SendArgs) {
  const { rows } = await pool.query<{ id: string; created_at: Date }>({
    name: statement.name,
    text: statement.text,
    values: statement.values(args),
  })
  const row = rows[0]
  if (!row) throw new Error(`the statement stored nothing for ${args.sender} in ${args.convoId}`)
  return { messageId: row.id, receivedAt: row.created_at.toISOString() }
}
