import type * as GetConvos from '../lexicon/types/blue.catbird.mls.getConvos.js'
import { listConvos } from '../services/convos.js'
import { xrpcHandler } from '../xrpc/types.js'

export default xrpcHandler<GetConvos.Params, undefined, GetConvos.Output>(
  async ({ params, caller, db }) => {
    const { convos, cursor } = await listConvos(db, {
      did: caller,
      limit: params.limit ?? 50,
      cursor: params.cursor,
    })
    return { conversations: convos, ...(cursor ? { cursor } : {}) }
  },
)
