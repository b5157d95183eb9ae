import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import type { AppContext } from '../context.js'
import { unprocessable, XRPCErrorWithHeaders } from '../xrpc/errors.js'
import {
  idempotencyScope,
  keyForLogs,
  requestFingerprint,
  requestIdempotencyKey,
} from './key.js'
import { claimIdempotencyKey, type IdempotencyClaim } from './store.js'

declare module 'fastify' {
  interface FastifyRequest {
    /** Set for a keyed write: the transaction the handler must write in. */
    idempotencyClaim: IdempotencyClaim | null
  }
}

export const REPLAYED_HEADER = 'idempotent-replayed'

/**
 * Exactly-once writes for the procedures whose lexicon input declares
 * `idempotencyKey`. Runs after auth and validation, before the handler:
 * a stored response for (caller, method, key) is replayed; otherwise the
 * request proceeds holding the key, and the route stores its response in
 * the same transaction as the write (see routes.ts and store.ts).
 */
async function idempotency(app: FastifyInstance, opts: { ctx: AppContext }): Promise<void> {
  const { config, pool, metrics } = opts.ctx
  app.decorateRequest('idempotencyClaim', null)

  app.addHook('preHandler', async (request, reply) => {
    const { nsid, acceptsIdempotencyKey } = request.routeOptions.config
    if (!acceptsIdempotencyKey || !nsid) return
    const body = request.body as Record<string, unknown> | undefined
    const key = requestIdempotencyKey(body?.idempotencyKey, request.headers['idempotency-key'])
    if (key === undefined) return

    const scope = idempotencyScope(request.caller, nsid, key)
    const fingerprint = requestFingerprint(body)
    const keyHash = keyForLogs(scope)
    const result = await claimIdempotencyKey(pool, {
      scope,
      fingerprint,
      callerDid: request.caller,
      nsid,
      waitMs: config.IDEMPOTENCY_WAIT_MS,
      ttlSeconds: config.IDEMPOTENCY_TTL_SECONDS,
    })

    if (result.kind === 'busy') {
      metrics.idempotency.inc({ outcome: 'in_progress' })
      request.log.info({ keyHash, nsid }, 'Idempotency key in use by a request still in progress')
      const retryAfter = String(Math.max(1, Math.ceil(config.IDEMPOTENCY_WAIT_MS / 1000)))
      throw new XRPCErrorWithHeaders(
        409,
        'A request with this idempotency key is still in progress; retry later',
        'IdempotencyRequestInProgress',
        { 'retry-after': retryAfter },
      )
    }
    if (result.kind === 'stored') {
      const { stored } = result
      if (!stored.fingerprint.equals(fingerprint)) {
        metrics.idempotency.inc({ outcome: 'mismatch' })
        request.log.warn({ keyHash, nsid }, 'Idempotency key reused with a different request')
        throw unprocessable(
          'IdempotencyKeyReused',
          'This idempotency key was already used with a different request',
        )
      }
      metrics.idempotency.inc({ outcome: 'hit' })
      request.log.info(
        { keyHash, nsid, status: stored.status },
        `Idempotency cache HIT for key=${keyHash} status=${stored.status}`,
      )
      return reply.status(stored.status).header(REPLAYED_HEADER, 'true').send(stored.response)
    }
    metrics.idempotency.inc({ outcome: 'miss' })
    request.idempotencyClaim = result.claim
  })

  // Safety net: a request that ended without the route committing or
  // aborting (the client went away mid-handler) must not keep the key.
  app.addHook('onResponse', async (request) => {
    await request.idempotencyClaim?.abort()
  })
}

export const idempotencyPlugin = fp(idempotency, { name: 'idempotency' })
