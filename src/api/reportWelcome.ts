import type { ConfirmOutcome } from '../services/welcomes.js'
import type { HandlerInput } from '../xrpc/types.js'

/** What operators watch of a confirmation: a failed processing is a warning; every outcome is counted. */
export function reportWelcome(
  req: Pick<HandlerInput<unknown, unknown>, 'caller' | 'ctx' | 'log'>,
  convoId: string,
  outcome: ConfirmOutcome,
  errorDetails: string | undefined,
): void {
  if (outcome === 'confirmed_failure') {
    req.log.warn(
      { convoId, errorDetails },
      `Welcome processing failed for user ${req.caller} in convo ${convoId}; kept for retry`,
    )
  }
  if (outcome !== 'already_consumed') req.ctx.metrics.welcome.inc({ event: outcome })
}
