/**
 * Subscription tickets: what opens a subscribeConvoEvents WebSocket. A
 * WebSocket comes straight to this server, without the PDS that vouches for
 * XRPC calls with a service-auth token, so a call that has one
 * (getSubscriptionTicket) gets a ticket: 32 random bytes, good for one
 * connection within 30 seconds, for its caller and, when it named one, one
 * conversation. Stored by its sha256 (which is also its shard key), so the
 * connection may reach any instance, and a leaked table holds no ticket.
 */
import { createHash, randomBytes } from 'node:crypto'
import { sql } from 'kysely'
import type { Db } from '../db/schema.js'
import { execute, statement } from '../db/statement.js'
import { Refusal } from './errors.js'
import { requireMember } from './membership.js'

const TICKET_LIFETIME_SECONDS = 30
/** How long a used or expired ticket is kept, so that a second use is told so (then it is unknown). */
const TICKET_RETENTION_SECONDS = 600

const hashOf = (ticket: string) => createHash('sha256').update(ticket).digest('hex')

/** A refused ticket: the error frame's name and message. */
const refused = (error: string, message: string) => new Refusal('forbidden', error, message)

export interface IssuedTicket {
  ticket: string
  expiresAt: Date
}

const issue = statement(
  'issue_subscription_ticket',
  (v: { ticketHash: string; did: string; convoId: string | null }) => sql<{ expires_at: Date }>`
    INSERT INTO subscription_ticket (ticket_hash, did, convo_id, expires_at)
    VALUES (${v.ticketHash}, ${v.did}, ${v.convoId}, now() + ${sql.lit(`${TICKET_LIFETIME_SECONDS} seconds`)}::interval)
    RETURNING expires_at`,
)

/**
 * A ticket for `did`, and for `convoId` alone when given (by its id or group
 * id; the caller must be a current member of it): the ticket names it by id.
 */
export async function issueTicket(db: Db, args: { did: string; convoId?: string | undefined }): Promise<IssuedTicket> {
  const convoId = args.convoId === undefined ? null : (await requireMember(db, args.convoId, args.did)).convo.id
  const ticket = randomBytes(32).toString('base64url')
  const { rows } = await execute(db, issue, { ticketHash: hashOf(ticket), did: args.did, convoId })
  return { ticket, expiresAt: (rows[0] as { expires_at: Date }).expires_at }
}

const redeem = statement(
  'redeem_subscription_ticket',
  (v: { ticketHash: string }) => sql<{ did: string; convo_id: string | null }>`
    UPDATE subscription_ticket SET used_at = now()
    WHERE ticket_hash = ${v.ticketHash} AND used_at IS NULL AND expires_at > now()
    RETURNING did, convo_id`,
)

/**
 * Uses a ticket up: who it is for, and its conversation if it names one.
 * Refused (an error frame's name and message) when unknown, used already,
 * or expired.
 */
export async function redeemTicket(db: Db, ticket: string): Promise<{ did: string; convoId?: string }> {
  const ticketHash = hashOf(ticket)
  const [row] = (await execute(db, redeem, { ticketHash })).rows
  if (row) return { did: row.did, ...(row.convo_id !== null ? { convoId: row.convo_id } : {}) }
  const known = await db
    .selectFrom('subscription_ticket')
    .select(['used_at', 'expires_at'])
    .where('ticket_hash', '=', ticketHash)
    .executeTakeFirst()
  if (known?.used_at) {
    throw refused('TicketAlreadyUsed', 'This ticket opened a connection already; get a new one (getSubscriptionTicket)')
  }
  if (known) {
    throw refused('ExpiredTicket', `This ticket expired at ${known.expires_at.toISOString()}; get a new one`)
  }
  throw refused('InvalidTicket', 'Unknown ticket: pass the ticket of getSubscriptionTicket as it came')
}

/** Deletes up to `batchSize` tickets used or expired long enough ago; answers how many. */
export async function sweepTickets(db: Db, batchSize: number): Promise<number> {
  const result = await db
    .deleteFrom('subscription_ticket')
    .where('ticket_hash', 'in', (qb) =>
      qb
        .selectFrom('subscription_ticket')
        .select('ticket_hash')
        .where(sql<boolean>`expires_at < now() - ${sql.lit(`${TICKET_RETENTION_SECONDS} seconds`)}::interval`)
        .limit(batchSize),
    )
    .executeTakeFirst()
  return Number(result.numDeletedRows)
}
