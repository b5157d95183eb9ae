import type { FastifyInstance, FastifyReply, FastifyRequest, RouteOptions } from 'fastify'
import fp from 'fastify-plugin'
import type { AppContext } from '../context.js'
import { claimKey, type KeyedTransaction } from '../idempotency/claim.js'
import {
  findRecord,
  isRecordTaken,
  RecordFound,
  type KeyedWrite,
  type StoredResponse,
} from '../idempotency/statement.js'
import { isRefusal, unprocessable, XRPCErrorWithHeaders } from './errors.js'
import { idempotencyScope, keyForLogs, requestFingerprint, requestIdempotencyKey } from './idempotency-key.js'

/** How the writes of a method that accepts an idempotency key are made exactly-once. */
export interface KeyedWrites<I = unknown> {
  /**
   * `statement`: the service's write statement checks the key and stores the
   * record (one round trip, no transaction held open);
   * `transaction`: this plugin claims the key in a transaction that the
   * handler's statements join, and commits it with the answer.
   */
  recordedIn: 'statement' | 'transaction'
  /** The record's shard (see KeyedWrite): the conversation, or the caller. */
  shardKey(input: I, caller: string): string
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Set on the routes of methods whose input accepts `idempotencyKey`. */
    keyedWrites?: KeyedWrites
  }
  interface FastifyRequest {
    /** A keyed write checked and recorded by its own statement: what the record holds. */
    keyedWrite: KeyedWrite | null
    /** A keyed write's transaction, held from the claim to the answer. */
    keyedTransaction: KeyedTransaction | null
  }
}

const REPLAYED_HEADER = 'idempotent-replayed'

const hooks = <T>(existing: T | T[] | undefined): T[] =>
  existing === undefined ? [] : Array.isArray(existing) ? existing : [existing]

/**
 * Exactly-once writes for the procedures whose lexicon input declares
 * `idempotencyKey`; the hooks are attached to those routes only. After auth
 * and validation, the preHandler reads the key and arranges the check: a
 * stored answer for (caller, method, key) on the write's shard is replayed,
 * the same key with another request is refused (422), and otherwise the
 * write goes ahead holding the key:
 *
 * - recorded in the statement (sendMessage, publishKeyPackage): the check
 *   is part of the service's write statement, which writes nothing when it
 *   finds a record (RecordFound: replayed here), and otherwise stores the
 *   record from the write's own RETURNING. A concurrent request with the
 *   same key that also found nothing loses on the record's primary key: its
 *   whole statement rolls back, and it replays the winner's answer.
 * - recorded in a transaction (createConvo, addMembers): the claim opens the
 *   transaction the handler writes in (one owner: this plugin begins it,
 *   commits it with the answer, aborts it, and runs the after-commit
 *   callbacks). A concurrent request with the same key waits for it.
 */
async function idempotency(app: FastifyInstance, opts: { ctx: AppContext }): Promise<void> {
  const { config, db, pool, metrics } = opts.ctx
  app.decorateRequest('keyedWrite', null)
  app.decorateRequest('keyedTransaction', null)

  const inProgress = () => {
    metrics.idempotency.inc({ outcome: 'in_progress' })
    const retryAfter = String(Math.max(1, Math.ceil(config.IDEMPOTENCY_WAIT_MS / 1000)))
    return new XRPCErrorWithHeaders(
      409,
      'A request with this idempotency key is still in progress; retry later',
      'IdempotencyRequestInProgress',
      { 'retry-after': retryAfter },
    )
  }

  /** Answers with the stored response, or refuses a different request under the same key. */
  const replay = (request: FastifyRequest, reply: FastifyReply, keyed: KeyedWrite, stored: StoredResponse) => {
    const log = { keyHash: keyForLogs(keyed.scope), nsid: keyed.nsid }
    if (!stored.fingerprint.equals(keyed.fingerprint)) {
      metrics.idempotency.inc({ outcome: 'mismatch' })
      request.log.warn(log, 'Idempotency key reused with a different request')
      throw unprocessable('IdempotencyKeyReused', 'This idempotency key was already used with a different request')
    }
    metrics.idempotency.inc({ outcome: 'hit' })
    request.log.info(
      { ...log, status: stored.status },
      `Idempotency cache HIT for key=${log.keyHash} status=${stored.status}`,
    )
    return reply.status(stored.status).header(REPLAYED_HEADER, 'true').send(stored.response)
  }

  const check = async (request: FastifyRequest, reply: FastifyReply) => {
    const { nsid, keyedWrites } = request.routeOptions.config
    if (!keyedWrites || !nsid) return
    const body = request.body as Record<string, unknown> | undefined
    const key = requestIdempotencyKey(body?.idempotencyKey, request.headers['idempotency-key'])
    if (key === undefined) return
    const keyed: KeyedWrite = {
      shardKey: keyedWrites.shardKey(request.xrpcInput, request.caller),
      scope: idempotencyScope(request.caller, nsid, key),
      callerDid: request.caller,
      nsid,
      fingerprint: requestFingerprint(body),
      ttlSeconds: config.IDEMPOTENCY_TTL_SECONDS,
    }
    if (keyedWrites.recordedIn === 'statement') {
      request.keyedWrite = keyed
      return
    }
    const claim = await claimKey(pool, keyed, config.IDEMPOTENCY_WAIT_MS, {
      distributed: config.DATABASE_DELEGATED_WRITES,
    })
    if (claim.kind === 'busy') {
      request.log.info(
        { keyHash: keyForLogs(keyed.scope), nsid },
        'Idempotency key in use by a request still in progress',
      )
      throw inProgress()
    }
    if (claim.kind === 'stored') return replay(request, reply, keyed, claim.stored)
    metrics.idempotency.inc({ outcome: 'miss' })
    request.keyedTransaction = claim.transaction
  }

  /**
   * A keyed write refused by the database's state, or beaten to its record,
   * may have lost to a concurrent request with the same key (a commit it
   * duplicated moved the epoch on, the same key package got stored): the
   * record that request stored is the answer.
   */
  const mayHaveLostRace = (err: unknown) => isRecordTaken(err) || isRefusal(err)

  /** A statement-recorded write: answered by a record (found, or stored by a concurrent winner), or a miss. */
  const settleStatementWrite = async (
    request: FastifyRequest,
    reply: FastifyReply,
    keyed: KeyedWrite,
    err: unknown,
  ) => {
    if (err instanceof RecordFound) return replay(request, reply, keyed, err.stored)
    const stored = mayHaveLostRace(err) ? await findRecord(db, keyed) : undefined
    if (stored) return replay(request, reply, keyed, stored)
    metrics.idempotency.inc({ outcome: 'miss' })
    // The winner's record went (expired and swept) between its commit and this look: rare; the client retries.
    if (isRecordTaken(err)) throw inProgress()
    throw err
  }

  const wrap = (handler: RouteOptions['handler']): RouteOptions['handler'] =>
    async function keyedHandler(this: FastifyInstance, request, reply) {
      const transaction = request.keyedTransaction
      const keyed = request.keyedWrite
      let payload: unknown
      try {
        // Routes answer with the serialized JSON (src/xrpc/routes.ts): the record stores those bytes.
        payload = await handler.call(this, request, reply)
        await transaction?.commit(reply.statusCode, payload as string)
      } catch (err) {
        // The original error says more than a failed rollback would.
        await transaction?.abort().catch(() => {})
        if (!keyed) throw err
        return settleStatementWrite(request, reply, keyed, err)
      }
      if (keyed) metrics.idempotency.inc({ outcome: 'miss' })
      return payload
    }

  app.addHook('onRoute', (route) => {
    if (!route.config?.keyedWrites) return
    route.preHandler = [...hooks(route.preHandler), check]
    route.handler = wrap(route.handler)
    // Safety net: a claim whose handler never ran (an error between the hooks) must not keep the key.
    route.onResponse = [
      ...hooks(route.onResponse),
      (request: FastifyRequest, _reply: FastifyReply, done: () => void) => {
        const transaction = request.keyedTransaction
        if (!transaction) return done()
        transaction.abort().then(done, done)
      },
    ]
  })
}

export const idempotencyPlugin = fp(idempotency, { name: 'idempotency', fastify: '5.x' })
