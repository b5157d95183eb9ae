import { NSID } from '../../lexicon/types/index.js'
import { issueTicket } from '../../services/tickets.js'
import { handler, type HandlerContext } from '../../xrpc/types.js'

const SUBSCRIPTION_PATH = '/xrpc/blue.catbird.mls.subscribeConvoEvents'

/**
 * Where clients open the subscription: WEBSOCKET_URL, else the host of a
 * did:web service DID (plain ws:// and this server's port on localhost).
 */
function endpointOf(config: HandlerContext['config']): string {
  if (config.WEBSOCKET_URL) return config.WEBSOCKET_URL
  const host = config.SERVICE_DID.startsWith('did:web:')
    ? decodeURIComponent(config.SERVICE_DID.slice('did:web:'.length))
    : 'localhost'
  return host === 'localhost'
    ? `ws://localhost:${config.PORT}${SUBSCRIPTION_PATH}`
    : `wss://${host}${SUBSCRIPTION_PATH}`
}

/**
 * A ticket that opens one subscribeConvoEvents WebSocket within 30 seconds,
 * for the caller (and the conversation it names, which it must be a member
 * of), and where to connect (src/services/tickets.ts).
 */
export default handler(NSID.getSubscriptionTicket, async ({ input, caller, db, ctx }) => {
  const { ticket, expiresAt } = await issueTicket(db, { did: caller, convoId: input.convoId })
  return { ticket, endpoint: endpointOf(ctx.config), expiresAt: expiresAt.toISOString() }
})
