import { NSID } from '../../lexicon/types/index.js'
import { encodeBase64 } from '../../lexicon/wire.js'
import { claimDeviceKeyPackage } from '../../services/keyPackages.js'
import { claimPendingAddition, mlsDidOf } from '../../services/pendingAdditions.js'
import { handler } from '../../xrpc/types.js'

/**
 * The claim, then one of the device's key packages for the claimer (on the
 * device's user's shard, after the claim committed). None left: the claim
 * stands without one, and the client falls back to the device joining by
 * external commit.
 */
export default handler(NSID.claimPendingDeviceAddition, async ({ input, caller, db, ctx }) => {
  const outcome = await claimPendingAddition(db, {
    pendingAdditionId: input.pendingAdditionId,
    caller,
    claimSeconds: ctx.config.PENDING_ADDITION_CLAIM_SECONDS,
  })
  // Settled already: nothing is left to do (no conversation named).
  if (!outcome.claimed && outcome.settled) return { claimed: false }
  const about = { convoId: outcome.groupId, deviceCredentialDid: mlsDidOf(outcome.userDid, outcome.deviceId) }
  if (!outcome.claimed)
    return { claimed: false, ...about, ...(outcome.claimedBy ? { claimedBy: outcome.claimedBy } : {}) }
  const keyPackage = await claimDeviceKeyPackage(db, {
    owner: outcome.userDid,
    deviceId: outcome.deviceId,
    claimedBy: caller,
  })
  return {
    claimed: true,
    ...about,
    claimedBy: caller,
    ...(keyPackage && {
      keyPackage: {
        did: keyPackage.did,
        keyPackage: encodeBase64(keyPackage.keyPackage),
        cipherSuite: keyPackage.cipherSuite,
        keyPackageHash: Buffer.from(keyPackage.ref).toString('hex'),
      },
    }),
  }
})
