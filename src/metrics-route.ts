import { timingSafeEqual } from 'node:crypto'
import type { FastifyInstance, onResponseHookHandler } from 'fastify'
import type { AppContext } from './context.js'
import { forbidden } from './xrpc/errors.js'
import { AuthRequiredError } from '@atproto/xrpc-server'

export const METRICS_PATH = '/metrics'

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|::ffff:127\.\d+\.\d+\.\d+)$/

function sameToken(given: string, expected: string): boolean {
  const a = Buffer.from(given)
  const b = Buffer.from(expected)
  return a.length === b.length && timingSafeEqual(a, b)
}

/**
 * Prometheus metrics. With METRICS_TOKEN set, scrapers must send it as a
 * bearer token; without it, only loopback clients (a sidecar, or an
 * operator on the host) may read them.
 */
export async function metricsRoute(
  app: FastifyInstance,
  opts: { ctx: AppContext; onResponse: onResponseHookHandler },
): Promise<void> {
  const { config, metrics } = opts.ctx
  app.get(METRICS_PATH, { onResponse: opts.onResponse }, async (request, reply) => {
    if (config.METRICS_TOKEN) {
      const [scheme, token] = (request.headers.authorization ?? '').split(' ')
      if (scheme?.toLowerCase() !== 'bearer' || !token || !sameToken(token, config.METRICS_TOKEN)) {
        throw new AuthRequiredError('A valid metrics token is required', 'AuthMissing')
      }
    } else if (!LOOPBACK.test(request.socket.remoteAddress ?? '')) {
      throw forbidden(undefined, 'Metrics are served to loopback clients only; set METRICS_TOKEN')
    }
    return reply.type(metrics.registry.contentType).send(await metrics.registry.metrics())
  })
}
