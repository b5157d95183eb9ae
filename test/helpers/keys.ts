import { randomUUID } from 'node:crypto'
import type { AppContext } from '../../src/context.js'
import { idempotencyScope } from '../../src/xrpc/idempotency-key.js'
import { claimKey, type KeyedTransaction } from '../../src/idempotency/claim.js'
import { NSID } from '../../src/lexicon/types/index.js'
import { convoIdOf } from '../../src/services/membership.js'
import { startTestApp, type TestApp } from './app.js'
import { randomGroupId } from './mls.js'
import type { TestUser } from './users.js'

/**
 * Claims an idempotency key as a request of a transaction-recorded method
 * (createConvo, addMembers) would, and holds it until `abort` or `commit`: a
 * concurrent request with the key waits for it.
 */
export async function holdKey(
  ctx: Pick<AppContext, 'pool' | 'config'>,
  args: { caller: string; nsid: string; key: string; shardKey: string; fingerprint?: Buffer },
): Promise<KeyedTransaction> {
  const claim = await claimKey(
    ctx.pool,
    {
      shardKey: args.shardKey,
      scope: idempotencyScope(args.caller, args.nsid, args.key),
      callerDid: args.caller,
      nsid: args.nsid,
      fingerprint: args.fingerprint ?? Buffer.alloc(32),
      ttlSeconds: 60,
    },
    1_000,
    { distributed: ctx.config.DATABASE_DELEGATED_WRITES },
  )
  if (claim.kind !== 'claimed') throw new Error(`expected to claim the key, got ${claim.kind}`)
  return claim.transaction
}

export interface SlowClaims {
  /** A server whose keyed requests wait for a held key at most the time given. */
  slow: TestApp
  /** The caller's createConvo key for `groupId`, held by `held` (another request, as it were). */
  key: string
  groupId: string
  held: KeyedTransaction
}

/**
 * Runs `fn` with a second server on `t`'s database, whose keyed requests
 * wait for a held key at most `waitMs`, and a createConvo key of `caller`'s
 * held there (for a new group id) until `fn` aborts or commits it; then lets
 * the key go and closes the server.
 */
export async function withSlowClaims<R>(
  t: TestApp,
  opts: { waitMs: number; caller: TestUser; config?: Record<string, string> },
  fn: (claims: SlowClaims) => Promise<R>,
): Promise<R> {
  const slow = await startTestApp({
    testDb: t.testDb,
    config: { ...opts.config, IDEMPOTENCY_WAIT_MS: String(opts.waitMs) },
  })
  try {
    const key = randomUUID()
    const groupId = randomGroupId()
    const held = await holdKey(slow.ctx, {
      caller: opts.caller.did,
      nsid: NSID.createConvo,
      key,
      shardKey: convoIdOf(groupId),
    })
    try {
      return await fn({ slow, key, groupId, held })
    } finally {
      await held.abort()
    }
  } finally {
    await slow.close()
  }
}
