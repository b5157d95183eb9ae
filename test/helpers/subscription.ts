import { Frame, MessageFrame } from '@atproto/xrpc-server'
import type { LexValue } from '@atproto/lex-cbor'
import WebSocket from 'ws'
import { NSID } from '../../src/lexicon/types/index.js'
import { queryString } from '../../src/lexicon/wire.js'
import { Arrivals } from './arrivals.js'
import type { XrpcClient } from './xrpc.js'
import type { TestUser } from './users.js'

export const SUBSCRIBE = 'blue.catbird.mls.subscribeConvoEvents'

/** One frame received: a message (its `$type` made from `t` as atproto's Subscription does) or an error. */
export type ReceivedFrame =
  | { kind: 'message'; $type: string; body: Record<string, unknown> }
  | { kind: 'error'; error: string; message: string | undefined }

export interface OpenSubscription {
  ws: WebSocket
  frames: ReceivedFrame[]
  /** The message frames' bodies with their `$type`, in order. */
  readonly events: Array<Record<string, unknown> & { $type: string }>
  /** The close code and reason, once closed. */
  closed: Promise<{ code: number; reason: string }>
  /** Resolves once `predicate` holds for the frames so far; rejects when the socket closes first, or after `timeoutMs`. */
  waitFor(predicate: (frames: ReceivedFrame[]) => boolean, timeoutMs?: number): Promise<void>
  /** Sends a client frame: an atproto message frame of `type` with `body`. */
  sendFrame(type: string, body: LexValue): void
  close(): void
}

/** The last frames, short: their types, cursors and errors. */
const summary = (frames: ReceivedFrame[]) =>
  JSON.stringify(frames.slice(-5).map((f) => (f.kind === 'error' ? f : { $type: f.$type, cursor: f.body.cursor })))

/** The WebSocket URL of the subscription at a server's base URL. */
export const subscriptionUrl = (baseUrl: string, params: Record<string, string | undefined> = {}) =>
  `${baseUrl.replace(/^http/, 'ws')}/xrpc/${SUBSCRIBE}${queryString(params)}`

/** A ticket of `user` (for `convoId` when given). */
export async function ticketOf(t: XrpcClient, user: TestUser, convoId?: string): Promise<string> {
  const res = await t.call(user, NSID.getSubscriptionTicket, { input: convoId ? { convoId } : {} })
  if (res.status !== 200) throw new Error(`getSubscriptionTicket answered ${res.status}: ${JSON.stringify(res.body)}`)
  return res.body.ticket
}

/** Opens a WebSocket to the subscription with these params as they are, and reads its frames as they arrive. */
export function connect(
  baseUrl: string,
  params: Record<string, string | undefined>,
  opts: WebSocket.ClientOptions = {},
): Promise<OpenSubscription> {
  const ws = new WebSocket(subscriptionUrl(baseUrl, params), opts)
  const arrivals = new Arrivals<ReceivedFrame>((frames) => `${frames.length} frames: ${summary(frames)}`)
  const frames = arrivals.items
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    ws.on('close', (code, reason) => {
      resolve({ code, reason: reason.toString() })
      arrivals.end()
    }),
  )
  ws.on('error', () => {})
  ws.on('message', (data: Buffer) => {
    const frame = Frame.fromBytes(new Uint8Array(data))
    arrivals.push(
      frame instanceof MessageFrame
        ? {
            kind: 'message',
            $type: `${SUBSCRIBE}${frame.type ?? ''}`,
            body: frame.body as Record<string, unknown>,
          }
        : { kind: 'error', error: frame.code, message: frame.message },
    )
  })
  const sub: OpenSubscription = {
    ws,
    frames,
    get events() {
      return frames.flatMap((f) => (f.kind === 'message' ? [{ ...f.body, $type: f.$type }] : []))
    },
    closed,
    waitFor: (predicate, timeoutMs) => arrivals.waitFor(predicate, timeoutMs),
    sendFrame(type, body) {
      ws.send(new MessageFrame(body, { type }).toBytes())
    },
    close: () => ws.close(),
  }
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(sub))
    ws.once('unexpected-response', (_req, res) => reject(new Error(`upgrade refused: ${res.statusCode}`)))
    ws.once('error', reject)
  })
}

/** Gets `user` a ticket and opens the subscription with it (and `params`). */
export async function subscribe(
  t: XrpcClient & { url: string },
  user: TestUser,
  params: { convoId?: string; cursor?: string } = {},
  ticketConvoId?: string,
): Promise<OpenSubscription> {
  return connect(t.url, { ...params, ticket: await ticketOf(t, user, ticketConvoId) })
}

/** The events of a kind (`#messageEvent`, ...), in order. */
export const eventsOf = (sub: OpenSubscription, type: string) =>
  sub.events.filter((e) => e.$type === `${SUBSCRIBE}${type}`)

/** The seqs of the messages received, in order. */
export const seqsOf = (sub: OpenSubscription) =>
  eventsOf(sub, '#messageEvent').map((e) => (e.message as { seq: number }).seq)
