import { NSID } from '../../lexicon/types/index.js'
import { deleteDevice, requireDevice } from '../../services/devices.js'
import { handler } from '../../xrpc/types.js'

export default handler(NSID.deleteDevice, async ({ input, caller, db, ctx }) =>
  deleteDevice(db, {
    user: caller,
    device: await requireDevice(db, caller, input.deviceId),
    welcomeRetentionDays: ctx.config.WELCOME_RETENTION_DAYS,
  }),
)
