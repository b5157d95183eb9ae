import type { MessageView } from '../../src/lexicon/types/blue.catbird.mls.defs.js'
import { NSID } from '../../src/lexicon/types/index.js'
import { queryString } from '../../src/lexicon/wire.js'
import { Arrivals } from './arrivals.js'
import type { TestUser } from './users.js'
import type { WireJson } from './xrpc.js'

export interface SseEvent {
  id?: string
  data: Record<string, unknown>
}

export interface SseStream {
  status: number
  events: SseEvent[]
  /** Comment lines received (keep-alives). */
  comments: string[]
  body: Record<string, unknown> | undefined
  /** Resolves once `predicate` holds for the events so far; rejects after `timeoutMs`. */
  waitFor(predicate: (events: SseEvent[]) => boolean, timeoutMs?: number): Promise<void>
  closed: Promise<void>
  close(): void
}

/** Opens an event stream as `user` and parses it as it arrives. */
export async function openStream(
  baseUrl: string,
  user: TestUser,
  params: Record<string, string> = {},
  headers: Record<string, string> = {},
): Promise<SseStream> {
  const abort = new AbortController()
  const res = await fetch(`${baseUrl}/xrpc/${NSID.streamConvoEvents}${queryString(params)}`, {
    headers: { authorization: `Bearer ${await user.token(NSID.streamConvoEvents)}`, ...headers },
    signal: abort.signal,
  })
  const arrivals = new Arrivals<SseEvent>((events) => `${events.length} events`)
  const events = arrivals.items
  const comments: string[] = []
  if (res.headers.get('content-type')?.startsWith('application/json')) {
    return {
      status: res.status,
      events,
      comments,
      body: (await res.json()) as Record<string, unknown>,
      waitFor: () => Promise.reject(new Error('not a stream')),
      closed: Promise.resolve(),
      close() {},
    }
  }
  const closed = (async () => {
    const decoder = new TextDecoder()
    let pending = ''
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        pending += decoder.decode(chunk, { stream: true })
        let end: number
        while ((end = pending.indexOf('\n\n')) !== -1) {
          const block = pending.slice(0, end)
          pending = pending.slice(end + 2)
          let id: string | undefined
          let data = ''
          for (const line of block.split('\n')) {
            if (line.startsWith(':')) comments.push(line.slice(1).trim())
            else if (line.startsWith('id: ')) id = line.slice(4)
            else if (line.startsWith('data: ')) data += line.slice(6)
          }
          if (data)
            arrivals.push({ ...(id !== undefined ? { id } : {}), data: JSON.parse(data) as Record<string, unknown> })
          else arrivals.changed()
        }
      }
    } catch {
      // aborted by close()
    } finally {
      arrivals.end()
    }
  })()
  return {
    status: res.status,
    events,
    comments,
    body: undefined,
    closed,
    close: () => abort.abort(),
    waitFor: (predicate, timeoutMs) => arrivals.waitFor(predicate, timeoutMs),
  }
}

/** The messages carried by a stream's events, in arrival order. */
export const messagesOf = (events: SseEvent[]) => events.map((e) => e.data.message as WireJson<MessageView>)
