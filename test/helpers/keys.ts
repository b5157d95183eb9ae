import type { AppContext } from '../../src/context.js'
import { idempotencyScope } from '../../src/xrpc/idempotency-key.js'
import { claimKey, type KeyedTransaction } from '../../src/idempotency/claim.js'

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
