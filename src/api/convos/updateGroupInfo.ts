import { NSID } from '../../lexicon/types/index.js'
import { putGroupInfo, type GroupInfo } from '../../services/groupInfo.js'
import { convoIdFor } from '../../services/membership.js'
import { invalidRequest } from '../../xrpc/errors.js'
import { handler } from '../../xrpc/types.js'
import { readGroupInfoField } from '../input.js'

export default handler(NSID.updateGroupInfo, async ({ input, caller, db, ctx }) => {
  // The lexicon requires the field.
  const info = readGroupInfoField(input.groupInfo, ctx.config.MAX_GROUP_INFO_BYTES) as GroupInfo
  if (info.epoch !== input.epoch) {
    throw invalidRequest('EpochMismatch', `groupInfo describes epoch ${info.epoch}, not ${input.epoch}`)
  }
  const convoId = convoIdFor(input.convoId, info.groupId)
  return { updated: await putGroupInfo(db, { convoId, caller, info }) }
})
