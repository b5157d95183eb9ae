import rateLimit, { type RateLimitPluginOptions } from '@fastify/rate-limit'
import type { Config } from '../config.js'
import { XRPCErrorWithHeaders } from './errors.js'

export { rateLimit }

/**
 * Per-caller limits on XRPC methods. Counted after auth (preHandler), so the
 * key is the verified DID and unauthenticated noise costs nothing here.
 */
export function rateLimitOptions(config: Config): RateLimitPluginOptions {
  return {
    max: config.RATE_LIMIT_PER_MINUTE,
    timeWindow: 60_000,
    hook: 'preHandler',
    allowList: (request) => !request.routeOptions.config.nsid,
    keyGenerator: (request) => request.caller || request.ip,
    errorResponseBuilder: (_request, context) =>
      new XRPCErrorWithHeaders(
        429,
        `Rate limit of ${context.max} requests per minute exceeded; retry in ${context.after}`,
        'RateLimitExceeded',
        {},
      ),
  }
}
