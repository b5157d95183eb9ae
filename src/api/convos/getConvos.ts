import { NSID } from '../../lexicon/types/index.js'
import { listConvos } from '../../services/convos.js'
import { handler } from '../../xrpc/types.js'

export default handler(NSID.getConvos, async ({ params, caller, db }) => {
  const { convos, cursor } = await listConvos(db, {
    did: caller,
    limit: params.limit ?? 50,
    cursor: params.cursor,
  })
  return { conversations: convos, ...(cursor ? { cursor } : {}) }
})
