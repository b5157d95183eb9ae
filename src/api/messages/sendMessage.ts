import { sql } from 'kysely'
import type { ResponseSql } from '../../idempotency/statement.js'
import type * as SendMessage from '../../lexicon/types/blue.catbird.mls.sendMessage.js'
import { NSID } from '../../lexicon/types/index.js'
import { sendCommit } from '../../services/commits.js'
import { sendMessage, type SentMessage } from '../../services/messages.js'
import { iso, isoSql } from '../../services/timestamps.js'
import { forbidden, invalidRequest } from '../../xrpc/errors.js'
import { handler } from '../../xrpc/types.js'
import { announce } from '../announce.js'
import { groupInfoWithoutCommit, readGroupInfoField, readMessage, withGroupInfo } from '../input.js'

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

export default handler(
  NSID.sendMessage,
  // One statement stores the message and the record; the record lives with the conversation.
  { keyedWrites: { recordedIn: 'statement', shardKey: (input) => input.convoId } },
  async (req) => {
    const { input, caller, db, ctx } = req
    // The token says who is speaking; the body may only agree (the client-era clients leave it out).
    if (input.senderDid !== undefined && input.senderDid !== caller) {
      throw forbidden(undefined, 'senderDid must be the DID of the authenticated caller')
    }
    const { ciphertext } = input
    const max = ctx.config.MAX_MESSAGE_BYTES
    if (ciphertext.length > max) {
      throw invalidRequest('MessageTooLarge', `ciphertext is larger than the ${max} bytes allowed`)
    }
    if (ciphertext.length === 0) {
      throw invalidRequest(undefined, 'ciphertext must not be empty')
    }
    const header = readMessage(ciphertext, 'ciphertext', input.epoch)
    const groupInfo = readGroupInfoField(input.groupInfo, ctx.config.MAX_GROUP_INFO_BYTES)
    const record = req.keyed && { keyed: req.keyed, response: outputSql }
    // Queued to be pushed (push on), to every device but the sending one, which the caller may name.
    const origin = { push: ctx.push, senderDevice: input.deviceId }
    let sent
    if (header.contentType === 'commit') {
      const maxCommit = ctx.config.MAX_COMMIT_BYTES
      if (ciphertext.length > maxCommit) {
        throw invalidRequest('MessageTooLarge', `a commit may be at most ${maxCommit} bytes`)
      }
      sent = await sendCommit(
        db,
        {
          convoId: input.convoId,
          sender: caller,
          commit: withGroupInfo({ data: ciphertext, groupId: header.groupId, epoch: header.epoch }, groupInfo),
          ...origin,
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
          convoId: input.convoId,
          sender: caller,
          groupId: header.groupId,
          epoch: header.epoch,
          ciphertext,
          embedType: input.embedType,
          embedUri: input.embedUri,
          ...origin,
        },
        record,
      )
    }
    announce(req, sent)
    return toOutput(sent)
  },
)
