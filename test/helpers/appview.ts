/**
 * A Bluesky AppView as far as block checks go: a real HTTP server on a
 * loopback port answering `GET /xrpc/app.bsky.graph.getRelationships` as the
 * documented method does (lexicons/app/bsky/graph/getRelationships.json and
 * app/bsky/graph/defs.json of bluesky-social/atproto): `actor` and up to 30
 * `others`; `{actor, relationships}`, each an `app.bsky.graph.defs#relationship`
 * (`did`, and the AT-URIs of `blocking`, `blockedBy`, `blockingByList`,
 * `blockedByList`, `following`, `followedBy` where there are such records) or
 * an `app.bsky.graph.defs#notFoundActor` (`actor`, `notFound: true`); an
 * actor it does not know is 400 `ActorNotFound`. It fails on demand.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { TID } from '@atproto/common-web'

type User = { did: string }

/** How the AppView misbehaves, until told otherwise. */
export type AppViewFailure = 'error' | 'garbage' | 'silent'

export interface FakeAppView {
  url: string
  /** `blocker` blocks `blocked`, by a block record (or through a mod list); answers the record's AT-URI. */
  block(blocker: User, blocked: User, opts?: { viaList?: boolean }): string
  unblock(blocker: User, blocked: User): void
  /** DIDs it does not know (no Bluesky account). */
  unknown: Set<string>
  fail(failure: AppViewFailure | undefined): void
  /** The calls it answered (or failed), with their params. */
  calls: Array<{ actor: string; others: string[] }>
  close(): Promise<void>
}

const MAX_OTHERS = 30
/** When the blocks it knows were made (their record keys are TIDs of this time). */
export const BLOCKED_AT = '2024-06-01T12:00:00.000Z'

export async function startFakeAppView(): Promise<FakeAppView> {
  const blocks = new Map<string, { uri: string; list: boolean }>()
  const unknown = new Set<string>()
  const calls: FakeAppView['calls'] = []
  let failure: AppViewFailure | undefined
  let serial = 0
  const key = (blocker: string, blocked: string) => `${blocker} ${blocked}`

  const json = (res: ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { 'content-type': 'application/json' })
    res.end(JSON.stringify(body))
  }

  const relationship = (actor: string, did: string) => {
    if (unknown.has(did)) return { $type: 'app.bsky.graph.defs#notFoundActor', actor: did, notFound: true }
    const out: Record<string, string> = { $type: 'app.bsky.graph.defs#relationship', did }
    const blocking = blocks.get(key(actor, did))
    const blockedBy = blocks.get(key(did, actor))
    if (blocking) out[blocking.list ? 'blockingByList' : 'blocking'] = blocking.uri
    if (blockedBy) out[blockedBy.list ? 'blockedByList' : 'blockedBy'] = blockedBy.uri
    return out
  }

  const handle = (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://appview')
    if (req.method !== 'GET' || url.pathname !== '/xrpc/app.bsky.graph.getRelationships') {
      return json(res, 501, { error: 'MethodNotImplemented', message: 'not this fake' })
    }
    const actor = url.searchParams.get('actor')
    const others = url.searchParams.getAll('others')
    calls.push({ actor: actor ?? '', others })
    if (failure === 'silent') return // never answers
    if (failure === 'error') return json(res, 502, { error: 'UpstreamFailure', message: 'upstream failed' })
    if (failure === 'garbage') {
      res.writeHead(200, { 'content-type': 'text/html' })
      return res.end('<html>maintenance</html>')
    }
    if (!actor)
      return json(res, 400, { error: 'InvalidRequest', message: 'Error: Params must have the property "actor"' })
    if (others.length > MAX_OTHERS) {
      return json(res, 400, {
        error: 'InvalidRequest',
        message: `Error: Params/others must not have more than ${MAX_OTHERS} elements`,
      })
    }
    if (unknown.has(actor)) return json(res, 400, { error: 'ActorNotFound', message: 'Actor not found' })
    return json(res, 200, { actor, relationships: others.map((did) => relationship(actor, did)) })
  }

  const server = createServer(handle)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    block(blocker, blocked, opts = {}) {
      const collection = opts.viaList ? 'app.bsky.graph.listblock' : 'app.bsky.graph.block'
      // A different TID per record, all of the same millisecond.
      const rkey = TID.fromTime(Date.parse(BLOCKED_AT) * 1000 + (++serial % 1000), 0).str
      const uri = `at://${blocker.did}/${collection}/${rkey}`
      blocks.set(key(blocker.did, blocked.did), { uri, list: opts.viaList ?? false })
      return uri
    },
    unblock(blocker, blocked) {
      blocks.delete(key(blocker.did, blocked.did))
    },
    unknown,
    fail(next) {
      failure = next
    },
    calls,
    async close() {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}
