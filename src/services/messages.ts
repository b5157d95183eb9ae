import { randomUUID } from 'node:crypto'
import { sql } from 'kysely'
import { onShard } from '../db/delegated.js'
import { violatedUniqueKey } from '../db/errors.js'
import type { ContentType, Db, Message } from '../db/schema.js'
import { byShape, execute, statement } from '../db/statement.js'
import type { Step, StepRefs, Steps } from '../db/steps.js'
import {
  executeRecorded,
  recordedSteps,
  type KeyValues,
  type RecordedWrite,
  type ResponseSql,
} from '../idempotency/statement.js'
import type { MessageView } from '../lexicon/types/blue.catbird.mls.defs.js'
import { conflict, epochMismatch, invalidRequest, requireGroup } from './errors.js'
import { groupInfoWithCommitStep, type GroupInfo } from './groupInfo.js'
import { requireMember } from './membership.js'
import { queueMessagePushStep, type PushQueueing } from './pushQueue.js'
import { ownDeviceId } from './pushTokens.js'
import { cursorTooOld, purgedUpTo } from './retention.js'
import { iso } from './timestamps.js'
import { settleWelcomeByActivity } from './welcomes.js'

/** What a sender is told of a stored message (commits too: they are delivered as messages). */
export interface SentMessage {
  id: string
  seq: number
  /** The epoch it was sent in (its MLS header's). */
  epoch: number
  /** Position in the event stream of every conversation (see src/events/hub.ts). */
  eventId: number
  createdAt: Date
  /** The sender's pending Welcome was settled by this message. */
  settledWelcome: boolean
  /** Stored before under the same msgId: this is the first answer, and nothing was written. */
  replayed: boolean
}

export interface SentRow {
  id: string
  seq: number
  epoch: number
  event_id: number
  created_at: Date
  /** How many Welcomes the sending settled. */
  settled: number
  /** Set when a message was stored before under the msgId: whether it is this one (same sender and bytes). */
  replayed_same?: boolean | null
}

export const toSentMessage = (row: SentRow): SentMessage => ({
  id: row.id,
  seq: row.seq,
  epoch: row.epoch,
  eventId: row.event_id,
  createdAt: row.created_at,
  settledWelcome: row.settled > 0,
  replayed: row.replayed_same != null,
})

/** What a stored message queues for push notifications. */
export interface PushOrigin {
  /** Push is on: the message (a commit, if asked) is queued to be pushed. */
  push?: PushQueueing | undefined
  /** The sender's own registered device that sends it: the sender's other devices are pushed to. */
  senderDevice?: string | undefined
}

export interface SendMessageArgs extends PushOrigin {
  convoId: string
  sender: string
  /** The MLS group id in the message's header, lowercase hex. */
  groupId: string
  epoch: number
  /** As sent: for a padded one, the envelope, which members get back as it came. */
  ciphertext: Uint8Array
  /** What its MLS header says (commits are stored by sendCommit); application data by default. */
  contentType?: Exclude<ContentType, 'commit'> | undefined
  /** The client's own id of the message (a ULID or UUID): the same again is the same message. */
  msgId?: string | undefined
  /** Sent with `delivery: ephemeral`. */
  ephemeral?: boolean | undefined
  embedType?: string | undefined
  embedUri?: string | undefined
}

/** What storeMessage stores: a message, or a commit with the GroupInfo of the epoch it leads to, if one came. */
export type StoredMessageArgs = Omit<SendMessageArgs, 'contentType'> &
  (
    | { kind: 'message'; contentType?: SendMessageArgs['contentType'] }
    | { kind: 'commit'; groupInfo?: GroupInfo | undefined }
  )

/** The shape of a stored message's statement: one statement per shape. */
export interface MessageShape {
  commit: boolean
  /** A commit that brings a GroupInfo stores it; one that does not deletes the stored one. */
  groupInfo: boolean
  /** Queued to be pushed. */
  push: boolean
  /** The client named the message (msgId): one stored before under that name answers instead. */
  msgId: boolean
}

/** A stored message's values, as its statement's parameters. */
export interface MessageValues {
  convoId: string
  sender: string
  groupId: string
  epoch: number
  messageId: string
  msgId: string | null
  contentType: ContentType
  ephemeral: boolean
  ciphertext: Uint8Array
  embedType: string | null
  embedUri: string | null
  groupInfoEpoch: number | null
  groupInfoData: Uint8Array | null
  senderDevice: string | null
}

export const messageShape = (args: StoredMessageArgs): MessageShape => ({
  commit: args.kind === 'commit',
  groupInfo: args.kind === 'commit' && args.groupInfo !== undefined,
  push: args.push !== undefined && (args.kind === 'message' || args.push.commits),
  msgId: args.msgId !== undefined,
})

export function messageValues(args: StoredMessageArgs): MessageValues {
  const groupInfo = args.kind === 'commit' ? args.groupInfo : undefined
  return {
    convoId: args.convoId,
    sender: args.sender,
    groupId: args.groupId,
    epoch: args.epoch,
    messageId: randomUUID(),
    msgId: args.msgId ?? null,
    contentType: args.kind === 'commit' ? 'commit' : (args.contentType ?? 'application'),
    ephemeral: args.ephemeral ?? false,
    ciphertext: args.ciphertext,
    embedType: args.embedType ?? null,
    embedUri: args.embedUri ?? null,
    groupInfoEpoch: groupInfo?.epoch ?? null,
    groupInfoData: groupInfo?.data ?? null,
    senderDevice: args.senderDevice ?? null,
  }
}

/**
 * The steps that store a message: the checks, the next per-conversation
 * sequence number (the conversation row's lock orders concurrent senders, and
 * a rolled-back send gives its number back, so numbers have no gaps), the
 * insert (`inserted`: id, seq, epoch, event_id, created_at), and settling the
 * sender's Welcome (`settled`). Nothing is stored when the sender is not a
 * current member, the group or epoch is not the conversation's, or a keyed
 * write's record is already there (see recordedSteps), or a message was
 * stored under its msgId (`replayed`: it answers instead). A commit also
 * moves the conversation to the next epoch, is listed for getCommits, and
 * keeps the conversation's GroupInfo in step (groupInfoWithCommitStep). With
 * push on, the message is queued to be pushed by the same write (`pushed`,
 * see pushQueue.ts). Used in larger writes too (a membership change).
 */
export function messageSteps(shape: MessageShape, v: MessageValues): Step[] {
  return [
    ...(shape.msgId
      ? [
          {
            name: 'replayed',
            select: sql`coalesce(msg_id, id::text) AS id, seq, epoch, event_id, created_at,
                        sender_did = ${v.sender} AND ciphertext = ${v.ciphertext} AS same`,
            from: 'message',
            where: sql`convo_id = ${v.convoId} AND msg_id = ${v.msgId}`,
          },
        ]
      : []),
    {
      name: 'sender',
      select: sql`1 AS one`,
      from: 'member',
      where: sql`convo_id = ${v.convoId} AND did = ${v.sender} AND left_at IS NULL`,
    },
    {
      name: 'bumped',
      update: 'convo',
      set: sql`last_seq = last_seq + 1, last_activity_at = now(),
               ${shape.commit ? sql`epoch = epoch + 1` : sql`last_message_at = now()`}`,
      where: sql`id = ${v.convoId} AND epoch = ${v.epoch} AND lower(group_id) = ${v.groupId}`,
      after: ['sender'],
      ...(shape.msgId ? { unless: ['replayed'] } : {}),
      returning: sql`last_seq`,
    },
    {
      name: 'inserted',
      insert: 'message',
      uses: ['bumped'],
      values: {
        id: sql`${v.messageId}::uuid`,
        convo_id: v.convoId,
        seq: sql`bumped.last_seq`,
        sender_did: v.sender,
        epoch: v.epoch,
        ciphertext: v.ciphertext,
        embed_type: v.embedType,
        embed_uri: v.embedUri,
        msg_id: v.msgId,
        content_type: v.contentType,
        ephemeral: v.ephemeral,
      },
      returning: sql`coalesce(msg_id, id::text) AS id, seq, epoch, event_id, created_at`,
    },
    ...(shape.commit
      ? [
          {
            name: 'listed',
            insert: 'commit',
            uses: ['inserted'],
            values: {
              convo_id: v.convoId,
              epoch: v.epoch,
              sender_did: v.sender,
              data: v.ciphertext,
              seq: sql`inserted.seq`,
            },
          },
          groupInfoWithCommitStep(shape.groupInfo, v),
        ]
      : []),
    { name: 'settled', ...settleWelcomeByActivity(v.convoId, v.sender), after: ['inserted'] },
    ...(shape.push ? [queueMessagePushStep(shape.commit ? 'commit' : 'message', v)] : []),
  ]
}

/** The stored message's row (its id: the client's msgId, else the server's), by type. */
export const SENT_COLUMNS = {
  id: 'text',
  seq: 'bigint',
  epoch: 'bigint',
  event_id: 'bigint',
  created_at: 'timestamptz',
  settled: 'int',
} as const

/** The stored message's row, from step `inserted` of messageSteps. */
export const sentValues = (refs: StepRefs): Record<keyof typeof SENT_COLUMNS, unknown> => ({
  id: sql`inserted.id`,
  seq: sql`inserted.seq`,
  epoch: sql`inserted.epoch`,
  event_id: sql`inserted.event_id`,
  created_at: sql`inserted.created_at`,
  settled: refs.count('settled'),
})

/**
 * The write that stores a message of `shape` (and a keyed send's record,
 * answered by `response`), made at the shape's first use; the bench's bare
 * peer sends the same.
 * @public
 */
export const storeMessageStatement = byShape(
  (shape: MessageShape & { response?: ResponseSql | undefined }) => {
    const { response } = shape
    const name = `store_${shape.commit ? 'commit' : 'message'}${shape.groupInfo ? '_with_group_info' : ''}${
      shape.msgId ? '_named' : ''
    }${shape.push ? '_pushed' : ''}${response ? '_keyed' : ''}`
    return onShard<MessageValues & KeyValues, SentRow>(name, { shardKey: 'convoId' }, (v, refs) => {
      const write: Steps = {
        steps: messageSteps(shape, v),
        result: {
          columns: { ...SENT_COLUMNS, replayed_same: 'boolean' },
          rows: [
            { from: 'inserted', values: { ...sentValues(refs), replayed_same: sql`NULL` } },
            ...(shape.msgId
              ? [
                  {
                    from: 'replayed',
                    values: {
                      id: sql`replayed.id`,
                      seq: sql`replayed.seq`,
                      epoch: sql`replayed.epoch`,
                      event_id: sql`replayed.event_id`,
                      created_at: sql`replayed.created_at`,
                      settled: sql`0`,
                      replayed_same: sql`replayed.same`,
                    },
                  },
                ]
              : []),
          ],
        },
      }
      return response ? recordedSteps({ shard: v.convoId, values: v, response, written: 'inserted' }, write) : write
    })
  },
  (shape) => `${shape.commit}/${shape.groupInfo}/${shape.msgId}/${shape.push}/${shape.response?.name ?? ''}`,
)

/**
 * Stores a message in one statement (see messageSteps), or nothing
 * (undefined). A keyed write is checked and recorded by the same statement
 * (src/idempotency/statement.ts).
 */
export async function storeMessage(
  db: Db,
  args: StoredMessageArgs,
  record?: RecordedWrite,
): Promise<SentMessage | undefined> {
  const write = storeMessageStatement({ ...messageShape(args), response: record?.response })
  // The sending device as named (its id, mlsDid or UUID), stored by its id.
  const senderDevice = args.senderDevice && (await ownDeviceId(db, args.sender, args.senderDevice))
  const values = messageValues({ ...args, senderDevice })
  const rows = await executeRecorded(db, write, values, record).catch((err: unknown) => {
    // Stored at once under the same msgId by a concurrent send: run again, and it answers.
    if (violatedUniqueKey(err) === 'message_msg_id_key') return executeRecorded(db, write, values, record)
    throw err
  })
  const row = rows[0]
  if (row?.replayed_same === false) {
    throw conflict('MsgIdReused', `msgId ${args.msgId} names another message of this conversation`)
  }
  return row && toSentMessage(row)
}

/** Stores an application message or a proposal (one statement; see storeMessage). */
export async function sendMessage(db: Db, args: SendMessageArgs, record?: RecordedWrite): Promise<SentMessage> {
  const sent = await storeMessage(db, { ...args, kind: 'message' }, record)
  if (sent) return sent
  // Nothing stored: say why (this path only runs for refused sends).
  const { convo } = await requireMember(db, args.convoId, args.sender)
  requireGroup(convo.group_id, args.groupId)
  throw epochMismatch(convo.epoch, args.epoch)
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

/**
 * The MLSMessage inside a ciphertext a client-era client padded (a 4-byte
 * big-endian length, the MLSMessage, zeros: checked so when it was sent),
 * else the ciphertext itself. The two cannot be confused: an MLSMessage
 * begins with its version and wire format (0x0001 000x), which read as a
 * length would put a second MLSMessage 65 KiB on, followed only by zeros.
 */
function withoutPadding(ciphertext: Uint8Array): Uint8Array {
  if (ciphertext.length < 6) return ciphertext
  const view = new DataView(ciphertext.buffer, ciphertext.byteOffset, ciphertext.byteLength)
  const length = view.getUint32(0)
  const end = 4 + length
  if (length === 0 || end > ciphertext.length || view.getUint16(4) !== MLS_10) return ciphertext
  for (let i = end; i < ciphertext.length; i++) if (ciphertext[i] !== 0) return ciphertext
  return ciphertext.subarray(4, end)
}

/** ProtocolVersion mls10 (RFC 9420 §6), the first two bytes of every MLSMessage. */
const MLS_10 = 1

/**
 * A stored message as members read it: its id is the sender's msgId when it
 * named one; `messageType` tells application data from the handshake
 * (commits and proposals), which a client that cannot process it passes
 * over silently. `convoId` as the reader named the conversation. Its
 * ciphertext as sent, or `unpadded` for a reader that knows no padding
 * (the seed-era clients).
 */
export function toMessageView(
  m: Message,
  convoId: string = m.convo_id,
  ciphertext: 'asSent' | 'unpadded' = 'asSent',
): MessageView {
  return {
    id: m.msg_id ?? m.id,
    convoId,
    sender: m.sender_did,
    ciphertext: ciphertext === 'unpadded' ? withoutPadding(m.ciphertext) : m.ciphertext,
    epoch: m.epoch,
    seq: m.seq,
    createdAt: iso(m.created_at),
    messageType: m.content_type === 'application' ? 'app' : 'commit',
    ...(m.embed_type !== null ? { embedType: m.embed_type } : {}),
    ...(m.embed_uri !== null ? { embedUri: m.embed_uri } : {}),
  }
}

const messagePage = statement('message_page', (v: { convoId: string; afterSeq: number; limit: number }, db) =>
  db
    .selectFrom('message')
    .selectAll()
    .where('convo_id', '=', v.convoId)
    .where('seq', '>', v.afterSeq)
    .orderBy('seq')
    .limit(v.limit),
)

/** The most seqs a page's gapInfo lists (a long gap is still one gap to the client). */
const MAX_MISSING_SEQS = 100

export interface MessagePage {
  messages: MessageView[]
  /** The last message's id, when more follow (the seed-era paging). */
  cursor?: string
  /** The last message's seq: the next page's sinceSeq (the client-era paging). */
  lastSeq?: number
  gapInfo: { hasGaps: boolean; missingSeqs: number[]; totalMessages: number }
}

/**
 * Messages after `sinceMessage` (a message id: the server's, or the sender's
 * msgId) or after `sinceSeq`, or from the start, in sequence order. A member
 * sees only what was sent while it was a member. `convoId` names the
 * conversation by its id or its group id, and the messages name it the same
 * way. Without a cursor (or with a sinceSeq from before the member joined) a
 * read starts at the member's first message the server still keeps; from a
 * cursor whose next messages are no longer kept (seqs have no gaps, and
 * retention deletes a prefix of them, so a page that does not start right
 * after the cursor lost its start to retention) it is refused: 400
 * CursorTooOld. gapInfo lists the seqs after the starting point (or after
 * what retention deleted), up to the page's last, that are not stored.
 * A reader that names the conversation by its id is a seed-era client,
 * which knows no padding: it gets the MLSMessage inside a padded
 * ciphertext; one that names it by its group id gets it as sent.
 */
export async function listMessages(
  db: Db,
  args: {
    convoId: string
    did: string
    sinceMessage?: string | undefined
    sinceSeq?: number | undefined
    limit: number
  },
): Promise<MessagePage> {
  const { convo, joinedSeq } = await requireMember(db, args.convoId, args.did)
  let afterSeq = Math.max(joinedSeq, args.sinceSeq ?? 0)
  if (args.sinceMessage !== undefined) {
    const since = args.sinceMessage
    const cursorRow = await db
      .selectFrom('message')
      .select('seq')
      .where('convo_id', '=', convo.id)
      .where((eb) =>
        UUID.test(since) ? eb.or([eb('msg_id', '=', since), eb('id', '=', since)]) : eb('msg_id', '=', since),
      )
      .executeTakeFirst()
    if (!cursorRow) {
      const purged = UUID.test(args.sinceMessage) ? (await purgedUpTo(db, convo.id)).seq : 0
      if (purged > 0) throw cursorTooOld(purged)
      throw invalidRequest('InvalidCursor', 'sinceMessage is not a message of this conversation')
    }
    afterSeq = Math.max(afterSeq, cursorRow.seq)
  }
  const { rows } = await execute(db, messagePage, { convoId: convo.id, afterSeq, limit: args.limit + 1 })
  const fromCursor = args.sinceMessage !== undefined || (args.sinceSeq ?? 0) > joinedSeq
  const first = rows[0]
  if (fromCursor && (first ? first.seq > afterSeq + 1 : afterSeq < convo.last_seq)) {
    throw cursorTooOld(first ? first.seq - 1 : convo.last_seq)
  }
  const shown = rows.slice(0, args.limit)
  const last = shown[shown.length - 1]
  const missingSeqs: number[] = []
  // What retention deleted is not missing: it is no longer kept (a read without a cursor starts after it).
  const leadingGap = !fromCursor && first !== undefined && first.seq > afterSeq + 1
  let expected = Math.max(afterSeq, leadingGap ? (await purgedUpTo(db, convo.id)).seq : 0) + 1
  for (const row of shown) {
    for (; expected < row.seq && missingSeqs.length < MAX_MISSING_SEQS; expected++) missingSeqs.push(expected)
    expected = row.seq + 1
  }
  return {
    messages: shown.map((m) => toMessageView(m, args.convoId, args.convoId === convo.id ? 'unpadded' : 'asSent')),
    ...(rows.length > args.limit && last ? { cursor: last.msg_id ?? last.id } : {}),
    ...(last ? { lastSeq: last.seq } : {}),
    gapInfo: { hasGaps: missingSeqs.length > 0, missingSeqs, totalMessages: shown.length },
  }
}
