import { NSID } from '../../lexicon/types/index.js'
import { optOut } from '../../services/optOuts.js'
import { handler } from '../../xrpc/types.js'

export default handler(NSID.optOut, async ({ caller, db, log }) => {
  const { withdrawn } = await optOut(db, caller)
  log.info({ withdrawn }, 'opted out of MLS chat: key packages withdrawn')
  return { success: true }
})
