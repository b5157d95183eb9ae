/**
 * What operators do to accounts (`npm run admin`): take a DID down (its
 * calls are refused, its key packages withdrawn, so no one adds it
 * anywhere) and restore it, look one up (its devices and how many
 * conversations it is in; never content), count what the server holds.
 * Every instance keeps the taken-down DIDs in memory (TakenDown), read
 * again every few seconds: checking a caller is a lookup in a set.
 */
import { sql } from 'kysely'
import type { Db } from '../db/schema.js'

/** Takes `did` down; answers how many of its unused key packages were withdrawn. */
export async function takeDown(db: Db, args: { did: string; reason?: string | undefined }): Promise<number> {
  await db
    .insertInto('account_takedown')
    .values({ did: args.did, reason: args.reason ?? null })
    .onConflict((oc) => oc.column('did').doUpdateSet({ reason: args.reason ?? null }))
    .execute()
  const withdrawn = await db
    .deleteFrom('key_package')
    .where('owner_did', '=', args.did)
    .where('consumed_at', 'is', null)
    .executeTakeFirst()
  return Number(withdrawn.numDeletedRows)
}

/** Lifts a takedown; answers whether there was one. Withdrawn key packages stay withdrawn (the owner publishes new ones). */
export async function restore(db: Db, did: string): Promise<boolean> {
  const result = await db.deleteFrom('account_takedown').where('did', '=', did).executeTakeFirst()
  return result.numDeletedRows > 0n
}

/** What an operator may know of an account: no content, no keys. */
export interface AccountLookup {
  did: string
  takenDown: { at: string; reason: string | null } | null
  devices: Array<{ deviceId: string; name: string; registeredAt: string; lastSeenAt: string }>
  conversations: number
  keyPackagesAvailable: number
}

export async function lookUp(db: Db, did: string): Promise<AccountLookup> {
  const [takedown, devices, counts] = await Promise.all([
    db.selectFrom('account_takedown').select(['taken_down_at', 'reason']).where('did', '=', did).executeTakeFirst(),
    db
      .selectFrom('device')
      .select(['device_id', 'name', 'created_at', 'last_seen_at'])
      .where('user_did', '=', did)
      .orderBy('created_at')
      .execute(),
    sql<{ conversations: number; key_packages: number }>`
      SELECT (SELECT count(*)::int FROM member WHERE did = ${did} AND left_at IS NULL) AS conversations,
             (SELECT count(*)::int FROM key_package WHERE owner_did = ${did} AND consumed_at IS NULL) AS key_packages`.execute(
      db,
    ),
  ])
  const count = counts.rows[0]
  return {
    did,
    takenDown: takedown ? { at: takedown.taken_down_at.toISOString(), reason: takedown.reason } : null,
    devices: devices.map((d) => ({
      deviceId: d.device_id,
      name: d.name,
      registeredAt: d.created_at.toISOString(),
      lastSeenAt: d.last_seen_at.toISOString(),
    })),
    conversations: count?.conversations ?? 0,
    keyPackagesAvailable: count?.key_packages ?? 0,
  }
}

/** What the server holds, counted. */
export async function serverStats(db: Db): Promise<Record<string, number>> {
  const { rows } = await sql<Record<string, number>>`
    SELECT (SELECT count(*)::int FROM convo) AS conversations,
           (SELECT count(*)::int FROM member WHERE left_at IS NULL) AS memberships,
           (SELECT count(DISTINCT did)::int FROM member WHERE left_at IS NULL) AS members,
           (SELECT count(*)::int FROM message) AS messages,
           (SELECT count(*)::int FROM key_package WHERE consumed_at IS NULL) AS "keyPackagesAvailable",
           (SELECT count(*)::int FROM device) AS devices,
           (SELECT count(*)::int FROM member_report WHERE status = 'pending') AS "reportsPending",
           (SELECT count(*)::int FROM account_takedown) AS "takenDown"`.execute(db)
  return rows[0] ?? {}
}

/**
 * The DIDs taken down, as this instance knows them: read whole at start and
 * every `refreshMs` after (takedowns are few). A takedown reaches every
 * instance within that time.
 */
export class TakenDown {
  private dids = new Set<string>()
  private timer: NodeJS.Timeout | undefined
  private readonly listeners: Array<(did: string) => void> = []

  constructor(
    private readonly db: Db,
    private readonly refreshMs: number,
    private readonly onError: (err: unknown) => void,
  ) {}

  has(did: string): boolean {
    return this.dids.has(did)
  }

  /** Calls `listener` with each DID found taken down by a read (what it holds open, it closes). */
  onTakenDown(listener: (did: string) => void): void {
    this.listeners.push(listener)
  }

  /** Reads the list again now. */
  async refresh(): Promise<void> {
    const rows = await this.db.selectFrom('account_takedown').select('did').execute()
    const before = this.dids
    this.dids = new Set(rows.map((r) => r.did))
    for (const did of this.dids) if (!before.has(did)) for (const listener of this.listeners) listener(did)
  }

  /** Reads the list (a failure is reported, and the next read tries again), then keeps it fresh. */
  async start(): Promise<void> {
    await this.refresh().catch(this.onError)
    this.timer = setInterval(() => void this.refresh().catch(this.onError), this.refreshMs)
    this.timer.unref()
  }

  stop(): void {
    clearInterval(this.timer)
  }
}
