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

/**
 * The statement the server's sendMessage sends (without a key), made once:
 * its text, its prepared statement's name, and its values for a message.
 */
export function sendStatement(dist: Dist) {
  const { name, text, slots } = dist.storeMessageStatement({ commit: false, groupInfo: false, msgId: false })
  return {
    name,
    text,
    /** Which value each parameter ($1, $2, ...) is: a name of SendArgs, or messageId. */
    slots,
    /** The parameter values for `args` (no embed: the load sends none), with a new message id. */
    values: (args: SendArgs): unknown[] => {
      const values: Record<string, unknown> = {
        ...args,
        messageId: randomUUID(),
        msgId: null,
        contentType: 'application',
        ephemeral: false,
        embedType: null,
        embedUri: null,
      }
      return slots.map((slot) => values[slot])
    },
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
