/**
 * What the server reads of Bluesky: who blocks whom, from an AppView's
 * `app.bsky.graph.getRelationships` (public, no auth): one actor against up
 * to 30 others per call, each relationship naming the block records either
 * way (`blocking`, `blockedBy`, and the same through mod lists). Answers are
 * kept briefly per pair of users. Imports nothing of the rest of the
 * server; what it hands out are plain values.
 */
import { TID } from '@atproto/common-web'

/** One user blocking another on Bluesky: the record that says so. */
export interface BlueskyBlock {
  blocker: string
  blocked: string
  /** The AT-URI of the block (or list block) record. */
  uri: string
  /** When the record was made, as its key (a TID) says; undefined for another key. */
  createdAt: Date | undefined
}

/** The AppView could not say: it did not answer, or not as the lexicon says it does. */
class BlueskyUnavailable extends Error {
  override name = 'BlueskyUnavailable'
}

export interface AppViewOptions {
  /** The AppView's base URL (its XRPC methods are under /xrpc/). */
  url: string
  /** How long an answer about two users is kept. */
  cacheSeconds: number
  /** How long one call may take. */
  timeoutMs: number
}

/** The lexicon's limit on `others` in one call. */
const MAX_OTHERS = 30
/** Calls in flight at once for one question. */
const CONCURRENCY = 8
/** Pairs kept; the oldest go first beyond this. */
const MAX_CACHED_PAIRS = 100_000

const pairKey = (a: string, b: string) => (a < b ? `${a} ${b}` : `${b} ${a}`)

/** When a record was made, from its key: record keys of blocks are TIDs (microseconds since the Unix epoch). */
function createdAtOf(uri: string): Date | undefined {
  const rkey = uri.split('/').at(-1) ?? ''
  return TID.is(rkey) ? new Date(TID.fromStr(rkey).timestamp() / 1000) : undefined
}

const uriOf = (value: unknown): string | undefined =>
  typeof value === 'string' && value.startsWith('at://') ? value : undefined

/** The blocks one relationship (app.bsky.graph.defs#relationship) names between `actor` and its `did`. */
function blocksOf(actor: string, relationship: Record<string, unknown>): BlueskyBlock[] {
  const other = relationship.did as string
  const found: BlueskyBlock[] = []
  for (const field of ['blocking', 'blockingByList', 'blockedBy', 'blockedByList']) {
    const uri = uriOf(relationship[field])
    if (!uri) continue
    const [blocker, blocked] = field.startsWith('blocking') ? [actor, other] : [other, actor]
    found.push({ blocker, blocked, uri, createdAt: createdAtOf(uri) })
  }
  return found
}

/** Blocks between pairs of users, as an AppView tells them, kept `cacheSeconds`. */
export class AppViewBlocks {
  private readonly cache = new Map<string, { blocks: BlueskyBlock[]; until: number }>()

  constructor(private readonly opts: AppViewOptions) {}

  /**
   * The blocks, in either direction, between `actor` and each of `others`:
   * from the cache, and for the rest one call per 30 others. Throws
   * BlueskyUnavailable when the AppView cannot say.
   */
  async blocksBetween(actor: string, others: string[]): Promise<BlueskyBlock[]> {
    const now = Date.now()
    const found: BlueskyBlock[] = []
    const unknown: string[] = []
    for (const other of new Set(others)) {
      if (other === actor) continue
      const cached = this.cache.get(pairKey(actor, other))
      if (cached && cached.until > now) found.push(...cached.blocks)
      else unknown.push(other)
    }
    const chunks: string[][] = []
    for (let i = 0; i < unknown.length; i += MAX_OTHERS) chunks.push(unknown.slice(i, i + MAX_OTHERS))
    for (let i = 0; i < chunks.length; i += CONCURRENCY) {
      const answers = await Promise.all(chunks.slice(i, i + CONCURRENCY).map((chunk) => this.fetch(actor, chunk)))
      for (const [chunkIndex, blocks] of answers.entries()) {
        for (const other of chunks[i + chunkIndex] ?? []) {
          const between = blocks.filter((b) => b.blocker === other || b.blocked === other)
          this.remember(pairKey(actor, other), between, now)
          found.push(...between)
        }
      }
    }
    return found
  }

  /** Forgets what was kept about two users (one of them reported a block made or lifted). */
  forget(a: string, b: string): void {
    this.cache.delete(pairKey(a, b))
  }

  private remember(key: string, blocks: BlueskyBlock[], now: number): void {
    this.cache.delete(key)
    if (this.cache.size >= MAX_CACHED_PAIRS) this.cache.delete(this.cache.keys().next().value as string)
    this.cache.set(key, { blocks, until: now + this.opts.cacheSeconds * 1000 })
  }

  /** One getRelationships call. An actor the AppView does not know (ActorNotFound) blocks no one there. */
  private async fetch(actor: string, others: string[]): Promise<BlueskyBlock[]> {
    const url = new URL('/xrpc/app.bsky.graph.getRelationships', this.opts.url)
    url.searchParams.set('actor', actor)
    for (const other of others) url.searchParams.append('others', other)
    const where = `the Bluesky AppView at ${url.origin}`
    let res: Response
    try {
      res = await fetch(url, {
        headers: { accept: 'application/json' },
        signal: AbortSignal.timeout(this.opts.timeoutMs),
      })
    } catch (err) {
      const cause =
        err instanceof Error && err.name === 'TimeoutError' ? `no answer within ${this.opts.timeoutMs} ms` : String(err)
      throw new BlueskyUnavailable(`${where} could not be reached (${cause})`)
    }
    const body = (await res.json().catch(() => undefined)) as Record<string, unknown> | undefined
    if (res.status === 400 && body?.error === 'ActorNotFound') return []
    if (!res.ok) throw new BlueskyUnavailable(`${where} answered HTTP ${res.status}`)
    const relationships = body?.relationships
    if (!Array.isArray(relationships)) {
      throw new BlueskyUnavailable(`${where} answered without a list of relationships`)
    }
    return relationships.flatMap((relationship: unknown) => {
      if (typeof relationship !== 'object' || relationship === null) return []
      const r = relationship as Record<string, unknown>
      // app.bsky.graph.defs#notFoundActor: a DID it does not know.
      if (r.notFound === true || typeof r.did !== 'string' || !others.includes(r.did)) return []
      return blocksOf(actor, r)
    })
  }
}
