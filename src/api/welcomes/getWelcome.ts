import { NSID } from '../../lexicon/types/index.js'
import { encodeBase64 } from '../../lexicon/wire.js'
import { findConvoId } from '../../services/membership.js'
import { fetchWelcome } from '../../services/welcomes.js'
import { gone } from '../../xrpc/errors.js'
import { handler } from '../../xrpc/types.js'
import { deviceIdOf } from '../input.js'

export default handler(NSID.getWelcome, async ({ params, caller, db, ctx, log }) => {
  const fetched = await fetchWelcome(db, {
    convoId: await findConvoId(db, params.convoId),
    did: caller,
    deviceId: deviceIdOf(params.deviceId, caller),
    graceSeconds: ctx.config.WELCOME_GRACE_SECONDS,
  })
  if (fetched.event === 'already_consumed') {
    ctx.metrics.welcome.inc({ event: 'already_consumed' })
    log.info(
      { convoId: params.convoId },
      `Welcome already consumed for user ${caller} in convo ${params.convoId} (expected on retry)`,
    )
    throw gone('WelcomeAlreadyConsumed', 'This Welcome was already processed; use the copy stored on your device')
  }
  const { data, event } = fetched
  if (event === 'claim_lapsed') ctx.metrics.welcome.inc({ event: 'claim_lapsed' })
  ctx.metrics.welcome.inc({ event: event === 'refetched_in_grace' ? event : 'fetched' })
  log.info({ convoId: params.convoId, event }, 'Welcome delivered')
  return { convoId: params.convoId, welcome: encodeBase64(data) }
})
