import { NSID } from '../../lexicon/types/index.js'
import { confirmWelcome } from '../../services/welcomes.js'
import { handler } from '../../xrpc/types.js'

export default handler(NSID.confirmWelcome, async ({ input, caller, db, ctx, log }) => {
  const outcome = await confirmWelcome(db, {
    convoId: input.convoId,
    did: caller,
    success: input.success,
    errorDetails: input.errorDetails,
  })
  if (outcome === 'confirmed_failure') {
    log.warn(
      { convoId: input.convoId, errorDetails: input.errorDetails },
      `Welcome processing failed for user ${caller} in convo ${input.convoId}; kept for retry`,
    )
  }
  if (outcome !== 'already_consumed') ctx.metrics.welcome.inc({ event: outcome })
  // A failure reported after the Welcome was consumed changes nothing: not accepted.
  return { confirmed: input.success || outcome !== 'already_consumed' }
})
