import { NSID } from '../../lexicon/types/index.js'
import { completePendingAddition } from '../../services/pendingAdditions.js'
import { handler } from '../../xrpc/types.js'

export default handler(NSID.completePendingDeviceAddition, async ({ input, caller, db }) => {
  await completePendingAddition(db, { pendingAdditionId: input.pendingAdditionId, caller, newEpoch: input.newEpoch })
  return { success: true }
})
