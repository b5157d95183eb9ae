import { sql } from 'kysely'
import type { ResponseSql } from '../../idempotency/statement.js'
import { NSID } from '../../lexicon/types/index.js'
import { publishKeyPackage } from '../../services/keyPackages.js'
import { handler } from '../../xrpc/types.js'
import { readKeyPackageInput } from '../input.js'

/** The same answer as the handler's, built in SQL for the record a keyed publish stores with the package. */
const outputSql: ResponseSql = {
  name: NSID.publishKeyPackage,
  json: (row) => sql`json_build_object('available', ${row}.available)`,
}

export default handler(
  NSID.publishKeyPackage,
  // One statement stores the package and the record; key packages, and so the record, live with their owner.
  { keyedWrites: { recordedIn: 'statement', shardKey: (_input, caller) => caller } },
  async ({ input, caller, db, ctx, keyed }) => {
    const kp = await readKeyPackageInput(input, {
      owner: caller,
      maxLifetimeDays: ctx.config.KEY_PACKAGE_MAX_LIFETIME_DAYS,
    })
    const available = await publishKeyPackage(
      db,
      {
        ...kp,
        owner: caller,
        maxPerUser: ctx.config.MAX_KEY_PACKAGES_PER_USER,
        // The package's own extension says so, or its owner does (for MLS libraries that cannot write it).
        lastResort: kp.lastResort || input.lastResort === true,
      },
      keyed && { keyed, response: outputSql },
    )
    return { available }
  },
)
