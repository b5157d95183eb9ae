import { NSID } from '../../lexicon/types/index.js'
import { expectedConversations, requireDevice } from '../../services/devices.js'
import { handler } from '../../xrpc/types.js'

export default handler(NSID.getExpectedConversations, async ({ params, caller, db }) => {
  // The iOS client names the device by its mlsDid here; its id and UUID do as well.
  const device = params.deviceId === undefined ? undefined : await requireDevice(db, caller, params.deviceId)
  return { conversations: await expectedConversations(db, { user: caller, device }) }
})
