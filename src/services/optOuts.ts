/**
 * Opting out of MLS chat: a row per user who opted out, on the user's
 * shard. Opting out withdraws the user's unused key packages, and none
 * published later is handed out until the user opts in again; a user is
 * opted in when others can add it: not opted out, and with a key package
 * to hand out (a last-resort one counts).
 */
import { sql } from 'kysely'
import type { Db } from '../db/schema.js'
import { transact } from '../db/transaction.js'

/** Opts `user` out, withdrawing its unused key packages (last-resort ones too): how many. */
export async function optOut(db: Db, user: string): Promise<{ withdrawn: number }> {
  return transact(db, async (trx) => {
    await trx
      .insertInto('opt_out')
      .values({ did: user })
      .onConflict((oc) => oc.doNothing())
      .execute()
    const withdrawn = await trx
      .deleteFrom('key_package')
      .where('owner_did', '=', user)
      .where('consumed_at', 'is', null)
      .executeTakeFirst()
    return { withdrawn: Number(withdrawn.numDeletedRows) }
  })
}

/**
 * Opts `user` in again (opting in twice changes nothing): when it first
 * did, as far as the server knows, the registration of its earliest device
 * (the client opts in as it registers one), else now.
 */
export async function optIn(db: Db, user: string): Promise<{ optedInAt: Date }> {
  await db.deleteFrom('opt_out').where('did', '=', user).execute()
  const { first } = await db
    .selectFrom('device')
    .select(sql<Date | null>`min(created_at)`.as('first'))
    .where('user_did', '=', user)
    .executeTakeFirstOrThrow()
  return { optedInAt: first ?? new Date() }
}

/** Whether each of `dids` is opted in, in their order. */
export async function optInStatuses(db: Db, dids: string[]): Promise<Array<{ did: string; optedIn: boolean }>> {
  const unique = [...new Set(dids)]
  const [optedOut, offering] = await Promise.all([
    db.selectFrom('opt_out').select('did').where('did', 'in', unique).execute(),
    db
      .selectFrom('key_package')
      .select('owner_did')
      .distinct()
      .where('owner_did', 'in', unique)
      .where('consumed_at', 'is', null)
      .where(sql<boolean>`expires_at > now()`)
      .execute(),
  ])
  const out = new Set(optedOut.map((row) => row.did))
  const canBeAdded = new Set(offering.map((row) => row.owner_did))
  return dids.map((did) => ({ did, optedIn: !out.has(did) && canBeAdded.has(did) }))
}
