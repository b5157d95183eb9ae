import type { SentMessage } from '../services/messages.js'
import type { HandlerInput } from '../xrpc/types.js'

/**
 * A stored message (commits are messages too), and the other events of the
 * log the request stored (`events`: a membership change's), reach event
 * streams once the request's writes commit; a Welcome it settled is counted.
 */
export function announce(
  req: Pick<HandlerInput<unknown, unknown>, 'ctx' | 'afterCommit'>,
  sent: SentMessage | undefined,
  events: number[] = [],
): void {
  const ids = sent ? [sent.eventId, ...events] : events
  if (ids.length > 0) req.afterCommit(() => ids.forEach((id) => req.ctx.events.announce(id)))
  if (sent?.settledWelcome) req.ctx.metrics.welcome.inc({ event: 'consumed_by_message' })
}
