import type * as SendMessage from '../lexicon/types/blue.catbird.mls.sendMessage.js'
import { sendMessage } from '../services/messages.js'
import { forbidden, invalidRequest } from '../xrpc/errors.js'
import { xrpcHandler } from '../xrpc/types.js'

export default xrpcHandler<SendMessage.Params, SendMessage.Input, SendMessage.Output>(
  async ({ input, caller, db, afterCommit, ctx }) => {
    // The token says who is speaking; the body may only agree.
    if (input.senderDid !== caller) {
      throw forbidden(undefined, 'senderDid must be the DID of the authenticated caller')
    }
    const max = ctx.config.MAX_MESSAGE_BYTES
    if (input.ciphertext.length > max) {
      throw invalidRequest('MessageTooLarge', `ciphertext is larger than the ${max} bytes allowed`)
    }
    if (input.ciphertext.length === 0) {
      throw invalidRequest(undefined, 'ciphertext must not be empty')
    }
    const sent = await sendMessage(db, {
      convoId: input.convoId,
      sender: caller,
      epoch: input.epoch,
      ciphertext: input.ciphertext,
      embedType: input.embedType,
      embedUri: input.embedUri,
    })
    afterCommit(() => ctx.events.announce(sent.eventId))
    if (sent.settledWelcome) ctx.metrics.welcome.inc({ event: 'consumed_by_message' })
    return { messageId: sent.id, receivedAt: sent.createdAt.toISOString() }
  },
)
