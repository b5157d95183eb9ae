import type * as SendMessage from '../lexicon/types/blue.catbird.mls.sendMessage.js'
import { sendCommit } from '../services/commits.js'
import { sendMessage } from '../services/messages.js'
import { forbidden, invalidRequest } from '../xrpc/errors.js'
import { xrpcHandler } from '../xrpc/types.js'
import { announce } from './announce.js'
import { groupInfoWithoutCommit, readGroupInfoField, readMessage, withGroupInfo } from './input.js'

export default xrpcHandler<SendMessage.Params, SendMessage.Input, SendMessage.Output>(async (req) => {
  const { input, caller, db, ctx } = req
  // The token says who is speaking; the body may only agree.
  if (input.senderDid !== caller) {
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
  let sent
  if (header.contentType === 'commit') {
    const maxCommit = ctx.config.MAX_COMMIT_BYTES
    if (ciphertext.length > maxCommit) {
      throw invalidRequest('MessageTooLarge', `a commit may be at most ${maxCommit} bytes`)
    }
    sent = await sendCommit(db, {
      convoId: input.convoId,
      sender: caller,
      commit: withGroupInfo({ data: ciphertext, groupId: header.groupId, epoch: header.epoch }, groupInfo),
    })
  } else {
    if (groupInfo) throw groupInfoWithoutCommit()
    // RFC 9420 §6: application data is only ever sent encrypted.
    if (header.contentType === 'application' && header.wireFormat !== 'PrivateMessage') {
      throw invalidRequest('InvalidMessage', 'ciphertext: application data must be a PrivateMessage')
    }
    sent = await sendMessage(db, {
      convoId: input.convoId,
      sender: caller,
      groupId: header.groupId,
      epoch: header.epoch,
      ciphertext,
      embedType: input.embedType,
      embedUri: input.embedUri,
    })
  }
  announce(req, sent)
  return { messageId: sent.id, receivedAt: sent.createdAt.toISOString() }
})
