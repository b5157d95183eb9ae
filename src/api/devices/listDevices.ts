import { NSID } from '../../lexicon/types/index.js'
import { listDevices } from '../../services/devices.js'
import { handler } from '../../xrpc/types.js'

export default handler(NSID.listDevices, async ({ caller, db }) => ({ devices: await listDevices(db, caller) }))
