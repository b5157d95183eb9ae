import { decodeAll, encode } from '@atproto/lex-cbor'
import { createWebSocketStream, WebSocket } from 'ws'
import type { Message as ConvoEvent } from '../lexicon/types/blue.catbird.mls.subscribeConvoEvents.js'
import { NSID } from '../lexicon/types/index.js'
import { queryString } from '../lexicon/wire.js'
import { SubscriptionError, XrpcClientError } from './errors.js'
import type { RetryOptions } from './retry.js'
import type { CursorStore } from './stores.js'
import type { XrpcClient } from './xrpc.js'

export type { ConvoEvent }

const SUBSCRIBE_CONVO_EVENTS = 'blue.catbird.mls.subscribeConvoEvents'

/**
 * Error frames after which connecting again helps (with a new ticket, from
 * the saved cursor); the others are refusals that would be repeated.
 */
const RECONNECT_AFTER = new Set([
  'ConsumerTooSlow',
  'RateLimitExceeded',
  'ExpiredTicket',
  'TicketAlreadyUsed',
  'ServiceUnavailable',
  'InternalServerError',
])

export interface SubscribeOptions {
  /** Only this conversation's events; all of the caller's conversations (those joined later too) without it. */
  convoId?: string
  /** Ends the subscription: the iteration finishes once the saved cursor is written. */
  signal?: AbortSignal
}

/** The key a subscription's cursor is kept under: its conversation, or `*` for all of them. */
export const cursorKey = (convoId: string | undefined) => convoId ?? '*'

/**
 * A resumable subscription to subscribeConvoEvents: iterate it for the
 * events, in order, each once; it connects with a fresh ticket each time,
 * from the last cursor kept in its store, and connects again (with backoff)
 * when the connection drops or the server asks it to. The cursor of an event
 * is saved once the loop asks for the next one, that is after the app has
 * handled it: a crash may deliver the last events again, never skip one.
 * Refusals (not a member, a cursor the server does not know) end the
 * iteration with a SubscriptionError.
 */
export class ConvoEventSubscription implements AsyncIterable<ConvoEvent> {
  private current: WebSocket | undefined

  constructor(
    private readonly xrpc: XrpcClient,
    private readonly serviceUrl: string,
    private readonly cursors: CursorStore,
    private readonly retry: RetryOptions,
    private readonly opts: SubscribeOptions,
  ) {}

  /** Tells the other members of `convoId` whether the user is typing; false when not connected right now. */
  typing(convoId: string, isTyping: boolean): boolean {
    const ws = this.current
    if (ws?.readyState !== WebSocket.OPEN) return false
    const header = encode({ op: 1, t: '#typing' })
    const body = encode({ convoId, isTyping })
    ws.send(Buffer.concat([header, body]))
    return true
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<ConvoEvent> {
    const key = cursorKey(this.opts.convoId)
    const { signal } = this.opts
    let failures = 0
    let saving: Promise<void> = Promise.resolve()
    let saveFailed: unknown
    try {
      while (!signal?.aborted) {
        let ws: WebSocket
        let frames: AsyncIterable<Buffer>
        try {
          ;({ ws, frames } = await this.connect((await this.cursors.get(key))?.cursor))
        } catch (err) {
          if (err instanceof XrpcClientError && !err.retryable) throw err
          await this.retry.sleep(this.backoff(++failures))
          continue
        }
        this.current = ws
        const abort = () => ws.close(1000)
        signal?.addEventListener('abort', abort)
        let refusal: SubscriptionError | undefined
        try {
          for await (const chunk of frames) {
            const [header, body] = [...decodeAll(new Uint8Array(chunk))] as Array<Record<string, unknown>>
            if (header?.op === -1) {
              refusal = new SubscriptionError(
                String(body?.error),
                typeof body?.message === 'string' ? body.message : '',
              )
              break
            }
            if (header?.op !== 1 || typeof header.t !== 'string' || body === undefined) continue
            failures = 0
            const event = { ...body, $type: `${SUBSCRIBE_CONVO_EVENTS}${header.t}` } as ConvoEvent
            yield event
            if (saveFailed) throw saveFailed
            // Saved behind the app's back: a crash before it lands delivers the event again.
            saving = this.cursors.put(key, { key, cursor: event.cursor, savedAt: new Date().toISOString() })
            saving.catch((err: unknown) => (saveFailed = err))
          }
        } catch (err) {
          // A dropped connection: connect again below.
          if (saveFailed || signal?.aborted) throw saveFailed ?? err
        } finally {
          signal?.removeEventListener('abort', abort)
          ws.terminate()
          this.current = undefined
        }
        if (refusal && !RECONNECT_AFTER.has(refusal.error)) throw refusal
        if (!signal?.aborted) await this.retry.sleep(this.backoff(++failures))
      }
    } finally {
      await saving
    }
  }

  /** Gets a ticket and opens a WebSocket with it; resolves once it is open, with its frames. */
  private async connect(cursor: string | undefined): Promise<{ ws: WebSocket; frames: AsyncIterable<Buffer> }> {
    const { convoId } = this.opts
    const { ticket } = await this.xrpc.procedure(NSID.getSubscriptionTicket, convoId ? { convoId } : {})
    // The service's own host, as Catbird's client does (the ticket's `endpoint` names the same service).
    const base = this.serviceUrl.replace(/^http/, 'ws').replace(/\/+$/, '')
    const ws = new WebSocket(`${base}/xrpc/${SUBSCRIBE_CONVO_EVENTS}${queryString({ ticket, convoId, cursor })}`)
    // Read from the start: the first frames may come with the handshake's answer, before 'open' is heard.
    // One object per message; the stream pauses the socket while the app is busy.
    const frames = createWebSocketStream(ws, { readableObjectMode: true }) as AsyncIterable<Buffer> & {
      destroy(): void
    }
    await new Promise<void>((resolve, reject) => {
      ws.once('open', resolve)
      ws.once('error', (cause) => {
        frames.destroy()
        reject(
          new XrpcClientError({
            nsid: SUBSCRIBE_CONVO_EVENTS,
            status: 0,
            error: 'NetworkError',
            message: `${SUBSCRIBE_CONVO_EVENTS}: ${cause.message}`,
            cause,
          }),
        )
      })
    })
    return { ws, frames }
  }

  private backoff(failures: number): number {
    const ceiling = Math.min(this.retry.maxDelayMs, this.retry.baseDelayMs * 2 ** (failures - 1))
    return Math.floor(this.retry.random() * ceiling)
  }
}
