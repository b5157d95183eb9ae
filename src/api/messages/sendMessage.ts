import { sql } from 'kysely'
import type { ResponseSql } from '../../idempotency/statement.js'
import type * as SendMessage from '../../lexicon/types/blue.catbird.mls.sendMessage.js'
import { NSID } from '../../lexicon/types/index.js'
import type { MessageHeader } from '../../mls/index.js'
import { sendCommit } from '../../services/commits.js'
import { convoIdFor } from '../../services/membership.js'
import { sendMessage, type SentMessage } from '../../services/messages.js'
import { iso, isoSql } from '../../services/timestamps.js'
import { forbidden, invalidRequest } from '../../xrpc/errors.js'
import { handler } from '../../xrpc/types.js'
import { announce } from '../announce.js'
import {
  groupInfoWithoutCommit,
  oncePerInput,
  readGroupInfoField,
  readMessage,
  unpad,
  withGroupInfo,
} from '../input.js'

/** The answer, from the stored message. */
const toOutput = (sent: SentMessage): SendMessage.Output => ({
  messageId: sent.id,
  receivedAt: iso(sent.createdAt),
  seq: sent.seq,
  epoch: sent.epoch,
})

/** The same answer built in SQL from the stored message's row, for the record a keyed send stores with it. */
const outputSql: ResponseSql = {
  name: NSID.sendMessage,
  json: (row) => sql`json_build_object('messageId', ${row}.id, 'receivedAt', ${isoSql(sql`${row}.created_at`)},
                                       'seq', ${row}.seq, 'epoch', ${row}.epoch)`,
}

/** A client's own message id: a ULID, or a UUID (the iOS client's, in capitals). */
const MSG_ID =
  /^(?:[0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{26}|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$/

/**
 * The MLS header of the message sent (inside its padding, when the client
 * padded it): the idempotency key's shard needs the conversation before the
 * handler runs, and a client-era client names the conversation by the group
 * id that the header holds.
 */
const headerOf = oncePerInput((input: SendMessage.Input): MessageHeader => {
  const { ciphertext, paddedSize } = input
  if (ciphertext.length === 0) throw invalidRequest(undefined, 'ciphertext must not be empty')
  return readMessage(paddedSize === undefined ? ciphertext : unpad(ciphertext, paddedSize), 'ciphertext', input.epoch)
})

const convoIdOfInput = (input: SendMessage.Input) => convoIdFor(input.convoId, headerOf(input).groupId)

export default handler(
  NSID.sendMessage,
  // One statement stores the message and the record; the record lives with the conversation.
  { keyedWrites: { recordedIn: 'statement', shardKey: convoIdOfInput } },
  async (req) => {
    const { input, caller, db, ctx } = req
    // The token says who is speaking; the body may only agree (the client-era clients leave it out).
    if (input.senderDid !== undefined && input.senderDid !== caller) {
      throw forbidden(undefined, 'senderDid must be the DID of the authenticated caller')
    }
    if (input.msgId !== undefined && !MSG_ID.test(input.msgId)) {
      throw invalidRequest(undefined, 'msgId must be a ULID (26 characters) or a UUID (36)')
    }
    const { ciphertext } = input
    const max = ctx.config.MAX_MESSAGE_BYTES
    if (ciphertext.length > max) {
      throw invalidRequest('MessageTooLarge', `ciphertext is larger than the ${max} bytes allowed`)
    }
    const header = headerOf(input)
    const convoId = convoIdOfInput(input)
    const groupInfo = readGroupInfoField(input.groupInfo, ctx.config.MAX_GROUP_INFO_BYTES)
    const record = req.keyed && { keyed: req.keyed, response: outputSql }
    const named = { msgId: input.msgId, ephemeral: input.delivery === 'ephemeral' }
    let sent
    if (header.contentType === 'commit') {
      const maxCommit = ctx.config.MAX_COMMIT_BYTES
      if (ciphertext.length > maxCommit) {
        throw invalidRequest('MessageTooLarge', `a commit may be at most ${maxCommit} bytes`)
      }
      sent = await sendCommit(
        db,
        {
          convoId,
          sender: caller,
          commit: withGroupInfo({ data: ciphertext, groupId: header.groupId, epoch: header.epoch }, groupInfo),
          ...named,
        },
        record,
      )
    } else {
      if (groupInfo) throw groupInfoWithoutCommit()
      // RFC 9420 §6: application data is only ever sent encrypted.
      if (header.contentType === 'application' && header.wireFormat !== 'PrivateMessage') {
        throw invalidRequest('InvalidMessage', 'ciphertext: application data must be a PrivateMessage')
      }
      sent = await sendMessage(
        db,
        {
          convoId,
          sender: caller,
          groupId: header.groupId,
          epoch: header.epoch,
          ciphertext,
          contentType: header.contentType,
          embedType: input.embedType,
          embedUri: input.embedUri,
          ...named,
        },
        record,
      )
    }
    // The same msgId again: the first answer, and nothing new to announce.
    if (!sent.replayed) announce(req, sent)
    return toOutput(sent)
  },
)
