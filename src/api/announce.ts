import type { SentMessage } from '../services/messages.js'
import type { HandlerInput } from '../xrpc/types.js'

/**
 * A stored message (commits are messages too) reaches event streams once the
 * request's writes commit; a Welcome it settled is counted.
 */
export function announce(
  req: Pick<HandlerInput<unknown, unknown>, 'ctx' | 'afterCommit'>,
  sent: SentMessage | undefined,
): void {
  if (!sent) return
  req.afterCommit(() => req.ctx.events.announce(sent.eventId))
  if (sent.settledWelcome) req.ctx.metrics.welcome.inc({ event: 'consumed_by_message' })
}
