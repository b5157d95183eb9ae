/**
 * Bluesky blocks between members. Two users who block each other (either
 * way, by record or through a mod list) are never put in one conversation:
 * createConvo and addMembers refuse such adds, checked by user DID, so for
 * all of a user's devices at once. Blocks come from Bluesky (a BlockGraph:
 * the AppView, src/bluesky) and from what users report of their own blocks
 * (handleBlockChange: a user speaks for its own blocks only). When Bluesky
 * cannot say, adds are refused (fail closed) unless the server is set to let
 * them through (fail open); the refusal says which.
 */
import { TID } from '@atproto/common-web'
import { sql } from 'kysely'
import type { Db } from '../db/schema.js'
import type { BlockRelationship } from '../lexicon/types/blue.catbird.mls.checkBlocks.js'
import type { AffectedConvo } from '../lexicon/types/blue.catbird.mls.handleBlockChange.js'
import { recordAdminAction } from './adminActions.js'
import { forbidden, invalidRequest, notAdmin, unavailable, type Refusal } from './errors.js'
import { requireMember } from './membership.js'
import { iso } from './timestamps.js'

/** One user blocking another. */
export interface Block {
  blocker: string
  blocked: string
  /** The AT-URI of the block record, when known. */
  uri?: string | undefined
  /** When the block was made, when known. */
  createdAt?: Date | undefined
}

/** Where Bluesky blocks come from; throws when it cannot tell. */
export interface BlockGraph {
  /** The blocks, either way, between `actor` and each of `others`. */
  blocksBetween(actor: string, others: string[]): Promise<Block[]>
  /** Forgets what it kept about these two. */
  forget(a: string, b: string): void
}

export interface BlockSettings {
  /** Undefined: Bluesky is not asked (only the blocks users reported are checked). */
  graph: BlockGraph | undefined
  /** When Bluesky cannot say: let adds through (true) or refuse them (false). */
  failOpen: boolean
}

/** The most users one check looks at: every pair among them is asked about. */
const MAX_CHECKED_USERS = 100

/** The pairs asked about: each of `adding` with every user of `existing` and every later one of `adding`. */
function pairsOf(adding: string[], existing: string[]): Array<[string, string[]]> {
  const added = [...new Set(adding)]
  const others = new Set(existing.filter((did) => !added.includes(did)))
  return added.map((actor, i) => [actor, [...others, ...added.slice(i + 1)]])
}

const sameBlock = (a: Block, b: Block) => a.blocker === b.blocker && a.blocked === b.blocked
const pairKey = (a: string, b: string) => (a < b ? `${a} ${b}` : `${b} ${a}`)
/** Users whose blocks Bluesky is asked about at once. */
const ACTORS_AT_ONCE = 4

/** The blocks users reported of themselves among `dids`. */
async function reportedBlocks(db: Db, dids: string[]): Promise<Block[]> {
  if (dids.length < 2) return []
  const rows = await db
    .selectFrom('user_block')
    .select(['blocker_did', 'blocked_did', 'block_uri', 'created_at'])
    .where('blocker_did', 'in', dids)
    .where('blocked_did', 'in', dids)
    .execute()
  return rows.map((r) => ({
    blocker: r.blocker_did,
    blocked: r.blocked_did,
    uri: r.block_uri ?? undefined,
    createdAt: r.created_at,
  }))
}

/**
 * The blocks between each of `adding` and the others (see pairsOf), from
 * the users' reports and from Bluesky. `unknown`: why Bluesky could not
 * say (its blocks are then missing).
 */
async function blocksAmong(
  db: Db,
  graph: BlockGraph | undefined,
  adding: string[],
  existing: string[],
): Promise<{ blocks: Block[]; unknown?: string }> {
  const pairs = pairsOf(adding, existing)
  const asked = new Set(pairs.flatMap(([actor, others]) => others.map((other) => pairKey(actor, other))))
  const blocks = (await reportedBlocks(db, [...new Set([...adding, ...existing])])).filter((b) =>
    asked.has(pairKey(b.blocker, b.blocked)),
  )
  let unknown: string | undefined
  if (graph) {
    try {
      for (let i = 0; i < pairs.length; i += ACTORS_AT_ONCE) {
        const asking = pairs.slice(i, i + ACTORS_AT_ONCE)
        const answers = await Promise.all(asking.map(([actor, others]) => graph.blocksBetween(actor, others)))
        for (const block of answers.flat()) if (!blocks.some((b) => sameBlock(b, block))) blocks.push(block)
      }
    } catch (err) {
      unknown = err instanceof Error ? err.message : String(err)
    }
  }
  return { blocks, ...(unknown !== undefined ? { unknown } : {}) }
}

const describe = (block: Block) => `${block.blocker} blocks ${block.blocked} on Bluesky`

/**
 * What checking an add for blocks found: the refusal to give, if any (403
 * `errorName` for a block; 503 BlueskyServiceUnavailable when Bluesky
 * cannot say and the server fails closed), or why Bluesky was not heard
 * when the server let the add through anyway (fail open). Kept, not thrown,
 * by the reserve step of createConvo and addMembers (before their
 * transaction, with no database lock held while the AppView answers); the
 * membership change throws it after its own checks.
 */
export interface BlockVerdict {
  refusal?: Refusal
  unchecked?: string
}

/** Checks adds that would put `adding` in a conversation with `existing` (and with each other). */
export async function checkAdds(
  db: Db,
  settings: BlockSettings,
  args: { adding: string[]; existing: string[]; errorName: 'BlockedByMember' | 'MutualBlockDetected' },
): Promise<BlockVerdict> {
  if (args.adding.length === 0) return {}
  const { blocks, unknown } = await blocksAmong(db, settings.graph, args.adding, args.existing)
  const [first] = blocks
  if (first) {
    return {
      refusal: forbidden(
        args.errorName,
        `${describe(first)}: users who block each other are not put in one conversation` +
          (blocks.length > 1 ? ` (and ${blocks.length - 1} more block(s))` : ''),
      ),
    }
  }
  if (unknown === undefined) return {}
  if (settings.failOpen) return { unchecked: unknown }
  return {
    refusal: unavailable(
      'BlueskyServiceUnavailable',
      `Could not check Bluesky blocks: ${unknown}. This server refuses adds it cannot check (it fails closed: BLOCKS_FAIL_OPEN is off); retry later`,
    ),
  }
}

/** The current members of a conversation, for checking an add: none when `caller` is not one (the change refuses it). */
export async function membersToCheck(db: Db, convoId: string, caller: string): Promise<string[]> {
  const rows = await db
    .selectFrom('member')
    .select('did')
    .where('convo_id', '=', convoId)
    .where('left_at', 'is', null)
    .execute()
  const members = rows.map((r) => r.did)
  return members.includes(caller) ? members : []
}

const toRelationship = (block: Block, checkedAt: Date): BlockRelationship => ({
  blockerDid: block.blocker,
  blockedDid: block.blocked,
  createdAt: iso(block.createdAt ?? checkedAt),
  ...(block.uri ? { blockUri: block.uri } : {}),
})

/** Every block among `dids` (at most MAX_CHECKED_USERS), as of now. */
async function blocksAmongAll(
  db: Db,
  settings: BlockSettings,
  dids: string[],
): Promise<{ blocks: BlockRelationship[]; checkedAt: string }> {
  const users = [...new Set(dids)]
  if (users.length > MAX_CHECKED_USERS) {
    throw invalidRequest('TooManyDids', `At most ${MAX_CHECKED_USERS} users are checked at once`)
  }
  const checkedAt = new Date()
  const { blocks, unknown } = await blocksAmong(db, settings.graph, users, [])
  if (unknown !== undefined) {
    throw unavailable('BlueskyServiceUnavailable', `Could not read Bluesky blocks: ${unknown}; retry later`)
  }
  return { blocks: blocks.map((b) => toRelationship(b, checkedAt)), checkedAt: iso(checkedAt) }
}

/** checkBlocks: the blocks among any users (blocks are public on Bluesky). */
export const checkBlocks = blocksAmongAll

/** An admin lists the blocks between the conversation's current members. */
export async function blockStatus(
  db: Db,
  settings: BlockSettings,
  args: { convoId: string; caller: string },
): Promise<{ groupId: string; blocks: BlockRelationship[]; checkedAt: string; memberCount: number }> {
  const { convo } = await requireMember(db, args.convoId, args.caller)
  const members = await db
    .selectFrom('member')
    .select(['did', 'role'])
    .where('convo_id', '=', convo.id)
    .where('left_at', 'is', null)
    .execute()
  if (!members.some((m) => m.did === args.caller && m.role === 'admin')) {
    throw notAdmin('only admins read the blocks between its members')
  }
  const dids = members.map((m) => m.did)
  return {
    groupId: convo.group_id.toLowerCase(),
    ...(await blocksAmongAll(db, settings, dids)),
    memberCount: dids.length,
  }
}

const BLOCK_URI = /^at:\/\/([^/]+)\/app\.bsky\.graph\.(block|listblock)\/([^/]+)$/

/**
 * A user reports a block it made or lifted on Bluesky: it speaks for its own
 * blocks only (403 BlockNotVerified for another's, or a record that is not
 * its own). The block is kept as the user reported it, what Bluesky said of
 * the two is forgotten, and each conversation both are members of gets an
 * entry in its admins' log (no one is removed automatically). Answers those
 * conversations (by group id); their admins are not notified (this server
 * has no notifications yet).
 */
export async function reportBlockChange(
  db: Db,
  settings: BlockSettings,
  args: { caller: string; blocker: string; blocked: string; action: string; uri?: string | undefined },
): Promise<AffectedConvo[]> {
  if (args.blocker !== args.caller) {
    throw forbidden('BlockNotVerified', 'blockerDid must be your own DID: you report only the blocks you made')
  }
  const record = args.uri === undefined ? undefined : BLOCK_URI.exec(args.uri)
  if (args.uri !== undefined && record?.[1] !== args.caller) {
    throw forbidden('BlockNotVerified', 'blockUri must name a block record in your own repository')
  }
  if (args.blocked === args.caller) throw invalidRequest(undefined, 'You cannot block yourself')
  if (args.action !== 'created' && args.action !== 'removed') {
    throw invalidRequest(undefined, 'action must be created or removed')
  }
  const created = args.action === 'created'
  if (created) {
    const rkey = record?.[3]
    await db
      .insertInto('user_block')
      .values({
        blocker_did: args.caller,
        blocked_did: args.blocked,
        block_uri: args.uri ?? null,
        ...(rkey && TID.is(rkey) ? { created_at: new Date(TID.fromStr(rkey).timestamp() / 1000) } : {}),
      })
      .onConflict((oc) => oc.columns(['blocker_did', 'blocked_did']).doUpdateSet({ block_uri: args.uri ?? null }))
      .execute()
  } else {
    await db
      .deleteFrom('user_block')
      .where('blocker_did', '=', args.caller)
      .where('blocked_did', '=', args.blocked)
      .execute()
  }
  settings.graph?.forget(args.caller, args.blocked)
  const { rows: shared } = await sql<{ id: string; group_id: string }>`
    SELECT c.id, c.group_id FROM member a
    JOIN member b ON b.convo_id = a.convo_id AND b.did = ${args.blocked} AND b.left_at IS NULL
    JOIN convo c ON c.id = a.convo_id
    WHERE a.did = ${args.caller} AND a.left_at IS NULL`.execute(db)
  if (created) {
    for (const convo of shared) {
      await recordAdminAction(db, {
        convoId: convo.id,
        actor: args.caller,
        action: 'block_reported',
        target: args.blocked,
      })
    }
  }
  return shared.map((convo) => ({
    convoId: convo.group_id.toLowerCase(),
    action: created ? 'requires_resolution' : 'no_action',
    adminNotified: false,
  }))
}
