import type * as GetMessages from '../lexicon/types/blue.catbird.mls.getMessages.js'
import { listMessages } from '../services/messages.js'
import { xrpcHandler } from '../xrpc/types.js'

export default xrpcHandler<GetMessages.Params, undefined, GetMessages.Output>(
  async ({ params, caller, db }) =>
    listMessages(db, {
      convoId: params.convoId,
      did: caller,
      sinceMessage: params.sinceMessage,
      limit: params.limit ?? 50,
    }),
)
