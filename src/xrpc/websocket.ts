/**
 * XRPC subscriptions over WebSocket, in atproto's event-stream framing (as
 * every firehose, com.atproto.sync.subscribeRepos): each binary message is a
 * DAG-CBOR header, `{op: 1, t: "#<type>"}` for a message or `{op: -1}` for an
 * error, then a DAG-CBOR body; an error frame ends the stream. Frames are
 * those of @atproto/xrpc-server (MessageFrame, ErrorFrame), byte for byte;
 * an event's is made once (its body encoded by ./dag-cbor.ts), WebSocket
 * framing included, and written to every socket as the same bytes. Sockets
 * are `ws`'s, upgraded from this server's own HTTP server at /xrpc/<nsid>.
 *
 * A socket sends what it is given in order, written as it is to the
 * connection under `ws` (which frames only pings, closes and error frames),
 * with at most HIGH_WATER bytes handed to the kernel at a time (what is
 * queued together leaves in one write), and queues the rest; its writer
 * waits for `drained()` before the next batch of events, so events wait in
 * their stream (whose bound is the handler's to keep) rather than in a
 * socket's queue. An error frame goes after what was sent already (so the
 * client's last cursor is exact) and drops what is queued. A socket is
 * pinged every `pingMs`; one that has not answered the previous ping is cut.
 * A client's own frames are atproto message frames too, at most
 * MAX_CLIENT_FRAME_BYTES; text, garbage, errors and types the subscription
 * does not take end that socket with an error frame.
 */
import type { IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import { ErrorFrame, Frame, FrameType, MessageFrame, type MessageFrameHeader } from '@atproto/xrpc-server'
import { encode, type LexValue } from '@atproto/lex-cbor'
import type { FastifyBaseLogger, FastifyInstance } from 'fastify'
import { WebSocket, WebSocketServer, type RawData } from 'ws'
import type { AppContext } from '../context.js'
import type { Db } from '../db/schema.js'
import type { Subscriptions } from '../lexicon/types/index.js'
import { assertAcceptableInput } from './input-boundary.js'
import { invalidRequest, toXrpcError, XRPCErrorWithHeaders } from './errors.js'
import { decodeQueryParams } from './params.js'
import { encodeTransient } from './dag-cbor.js'
import { handlerContext } from './routes.js'
import type { HandlerContext } from './types.js'

/** WebSocket close codes (RFC 6455 §7.4.1) this server ends sockets with. */
export const CloseCode = {
  Normal: 1000,
  GoingAway: 1001,
  UnsupportedData: 1003,
  Policy: 1008,
  TooBig: 1009,
  InternalError: 1011,
} as const

/** Largest frame a client may send (its frames are small: typing notices). */
const MAX_CLIENT_FRAME_BYTES = 16 * 1024
/** Bytes handed to the kernel at a time per socket; the rest waits in the socket's queue. */
const HIGH_WATER = 64 * 1024
/** How long a closed socket's client has to answer the close before it is cut. */
const CLOSE_GRACE_MS = 5_000

declare const wire: unique symbol
/** A binary WebSocket message as it goes on the wire, framing and all: written as it is to any number of sockets. */
export type WireFrame = Buffer & { readonly [wire]: true }

/** The WebSocket framing of a server's binary message (RFC 6455 §5.2: one final frame, unmasked) around `parts`. */
function wireFrame(parts: Uint8Array[]): WireFrame {
  const length = parts.reduce((n, part) => n + part.byteLength, 0)
  const header = length < 126 ? 2 : length < 65_536 ? 4 : 10
  const frame = Buffer.allocUnsafe(header + length)
  frame[0] = 0x82 // FIN, opcode 2 (binary)
  if (header === 2) frame[1] = length
  else if (header === 4) {
    frame[1] = 126
    frame.writeUInt16BE(length, 2)
  } else {
    frame[1] = 127
    frame.writeBigUInt64BE(BigInt(length), 2)
  }
  let at = header
  for (const part of parts) {
    frame.set(part, at)
    at += part.byteLength
  }
  return frame as WireFrame
}

/** Each message type's header, as MessageFrame has it, encoded once. */
const messageHeaders = new Map<string, Uint8Array>()

/**
 * A message frame (`t` a `#name` of the subscription's lexicon), as
 * MessageFrame's bytes (its header, then its body), made once for any number
 * of sockets: `ws` would frame and write it in two parts for each.
 */
export function messageFrame(type: `#${string}`, body: LexValue): WireFrame {
  let header = messageHeaders.get(type)
  if (header === undefined) {
    header = encode({ op: FrameType.Message, t: type } satisfies MessageFrameHeader)
    messageHeaders.set(type, header)
  }
  // wireFrame copies the body out before anything is encoded again.
  return wireFrame([header, encodeTransient(body)])
}

const errorFrame = (error: string, message: string | undefined): Uint8Array =>
  new ErrorFrame(message === undefined ? { error } : { error, message }).toBytes()

/** A client's message frame, read: its type and body. */
export interface ClientFrame {
  type: string | undefined
  body: LexValue
}

export interface SocketOptions {
  pingMs: number
  log: FastifyBaseLogger
}

/** One subscriber's WebSocket: ordered sends with a bounded queue, keep-alive, and ending with an error frame. */
export class SubscriptionSocket {
  private readonly queue: WireFrame[] = []
  private inFlight = 0
  /** Bytes of each batch of writes handed to the kernel and not completed yet, oldest first. */
  private readonly writes: number[] = []
  private readonly closer = new AbortController()
  private alive = true
  /** The socket is gone, or going (as `signal`, which is slower to ask on every frame). */
  private closed = false
  private readonly pinger: NodeJS.Timeout
  private onFrame: ((frame: ClientFrame) => Promise<void>) | undefined
  private onDrained: (() => void) | undefined

  constructor(
    private readonly ws: WebSocket,
    /** The connection under `ws`. */
    private readonly raw: Duplex,
    private readonly opts: SocketOptions,
  ) {
    ws.on('pong', () => (this.alive = true))
    ws.on('close', () => this.ended())
    // A frame over maxPayload: ws closes with 1009 itself.
    ws.on('error', (err) => opts.log.info({ err }, 'websocket error'))
    ws.on('message', (data, isBinary) => this.received(data, isBinary))
    this.pinger = setInterval(() => {
      if (!this.alive) {
        opts.log.info('websocket did not answer a ping; cut')
        return ws.terminate()
      }
      this.alive = false
      ws.ping()
    }, opts.pingMs)
    this.pinger.unref()
  }

  /** Aborts when the socket closes, whichever side closed it. */
  get signal(): AbortSignal {
    return this.closer.signal
  }

  /** Frames sent to the client go through `handler`; a refusal it throws ends the socket with its error. */
  onMessage(handler: (frame: ClientFrame) => Promise<void>): void {
    this.onFrame = handler
  }

  /** Sends a frame (the same bytes may go to many sockets), after those queued. */
  send(frame: WireFrame): void {
    this.enqueue(frame)
    this.flush()
  }

  /** Sends frames, in order: those that fit under the high water go to the kernel in one write. */
  sendAll(frames: readonly WireFrame[]): void {
    for (const frame of frames) this.enqueue(frame)
    this.flush()
  }

  /** Queues a frame to leave with the next `flush`. */
  enqueue(frame: WireFrame): void {
    if (!this.closed) this.queue.push(frame)
  }

  /** Whether nothing waits in the queue: the writer may send without waiting for `drained()`. */
  get idle(): boolean {
    return this.queue.length === 0
  }

  /** Resolves once nothing waits in the queue (or the socket closed): when the writer may send again. */
  drained(): Promise<void> {
    if (this.queue.length === 0 || this.closed) return Promise.resolve()
    return new Promise((resolve) => {
      this.onDrained = resolve
    })
  }

  /** Hands what is queued to the kernel, up to the high water, in one write. */
  flush(): void {
    // Nothing may follow a close frame, whichever side sent it (ws answers a client's at once).
    const open = !this.closed && this.ws.readyState === WebSocket.OPEN
    let batch = 0
    // Corked: the frames of one flush leave in one write, not one each.
    const corked = open && this.queue.length > 1
    if (corked) this.raw.cork()
    while (open && this.queue.length > 0 && this.inFlight < HIGH_WATER) {
      const frame = this.queue.shift() as WireFrame
      this.inFlight += frame.length
      batch += frame.length
      const last = this.queue.length === 0 || this.inFlight >= HIGH_WATER
      // Writes complete in order: the last frame's callback stands for the whole batch.
      if (last) this.writes.push(batch)
      this.raw.write(frame, last ? this.wrote : undefined)
      if (last) batch = 0
    }
    if (corked) this.raw.uncork()
    if (this.queue.length === 0 || !open) {
      const resolve = this.onDrained
      this.onDrained = undefined
      resolve?.()
    }
  }

  /** A batch of writes completed (its last write's callback; one function for every write of the socket). */
  private readonly wrote = (): void => {
    this.inFlight -= this.writes.shift() as number
    this.flush()
  }

  /**
   * Ends the stream with an error frame and a close code. What is still
   * queued is dropped: the client resumes from the last event it received.
   */
  fail(error: string, message: string | undefined, code: number = CloseCode.Policy): void {
    if (this.closed) return
    this.opts.log.info({ error, reason: message, code }, 'websocket ended with an error')
    this.queue.length = 0
    this.ws.send(errorFrame(error, message), { binary: true })
    this.close(code, error)
  }

  /** Closes the socket; a client that does not answer the close is cut after a grace period. */
  close(code: number, reason = ''): void {
    if (this.closed) return
    this.ended()
    this.ws.close(code, reason)
    setTimeout(() => this.ws.terminate(), CLOSE_GRACE_MS).unref()
  }

  /** The socket is gone, or going. */
  private ended(): void {
    this.closed = true
    clearInterval(this.pinger)
    this.closer.abort()
    this.flush()
  }

  private received(data: RawData, isBinary: boolean): void {
    if (this.closed) return
    if (!isBinary) {
      return this.fail('InvalidFrame', 'Frames are binary: a DAG-CBOR header and body', CloseCode.UnsupportedData)
    }
    let frame: Frame
    try {
      frame = Frame.fromBytes(new Uint8Array(Buffer.isBuffer(data) ? data : Buffer.concat(data as Buffer[])))
    } catch (err) {
      return this.fail('InvalidFrame', `Not an atproto frame: ${(err as Error).message}`)
    }
    if (!(frame instanceof MessageFrame)) {
      return this.fail('InvalidFrame', 'A client sends message frames (op 1), not errors')
    }
    if (!this.onFrame) return this.fail('InvalidFrame', 'This subscription takes no frames from clients')
    this.onFrame({ type: frame.type, body: frame.body }).catch((err: unknown) => this.failWith(err))
  }

  /** Ends the socket with the error frame of anything thrown while serving it. */
  failWith(err: unknown): void {
    const xrpcErr = toXrpcError(err)
    if (xrpcErr.statusCode >= 500) this.opts.log.error({ err }, 'websocket subscription failed')
    const { error, message } = xrpcErr.payload
    this.fail(
      error ?? 'InternalServerError',
      message,
      xrpcErr.statusCode >= 500 ? CloseCode.InternalError : CloseCode.Policy,
    )
  }
}

/** What a subscription's handler gets: its params (decoded and checked), the server's context, the upgrade request. */
export interface SubscriptionInput<P> {
  params: P
  db: Db
  ctx: HandlerContext
  log: FastifyBaseLogger
  request: IncomingMessage
}

/** A subscriber's stream, ready before the WebSocket opens: where it starts is fixed when the client hears it is open. */
export interface SubscriptionStream {
  /** Serves the socket until the stream ends; anything it throws ends the socket with an error frame. */
  run(socket: SubscriptionSocket): Promise<void>
  /** The client went away before its socket opened. */
  abandon(): void
}

/**
 * Checks a subscription request and opens its stream, before the upgrade is
 * answered; a refusal it throws reaches the client as an error frame once
 * the socket is open (atproto's way: the handshake itself succeeds).
 */
export type SubscriptionHandler<P = unknown> = (req: SubscriptionInput<P>) => Promise<SubscriptionStream>

export type SubscriptionHandlers = { [N in keyof Subscriptions]?: SubscriptionHandler<Subscriptions[N]['params']> }

export interface SubscriptionRoutesOptions {
  ctx: AppContext
  handlers: SubscriptionHandlers
}

/** A subscription's query parameters, decoded and checked against its lexicon. */
function parseParams(ctx: AppContext, nsid: keyof Subscriptions, req: IncomingMessage): unknown {
  const def = ctx.lexicons.getDefOrThrow(nsid)
  const query = new URLSearchParams((req.url ?? '').split('?')[1] ?? '')
  const params = decodeQueryParams(def.type === 'subscription' ? def.parameters : undefined, query)
  assertAcceptableInput(params)
  try {
    ctx.lexicons.assertValidXrpcParams(nsid, params)
  } catch (err) {
    throw invalidRequest(undefined, err instanceof Error ? err.message : String(err))
  }
  return params
}

/** Answers an upgrade this server does not take, as XRPC would, and lets the connection go. */
function refuseUpgrade(socket: Duplex, status: number, error: string, message: string): void {
  const body = JSON.stringify({ error, message })
  socket.end(
    `HTTP/1.1 ${status} ${error}\r\nContent-Type: application/json\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  )
}

/**
 * The WebSocket subscriptions at /xrpc/<nsid>: upgrades of the HTTP server
 * go to their handlers; a plain GET there is told to upgrade. On shutdown
 * every socket is closed (1001) and given a moment to say goodbye.
 */
export async function subscriptionRoutes(app: FastifyInstance, opts: SubscriptionRoutesOptions): Promise<void> {
  const { ctx, handlers } = opts
  const { config, db } = ctx
  const handlerCtx = handlerContext(ctx)
  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: MAX_CLIENT_FRAME_BYTES,
    perMessageDeflate: false,
    clientTracking: false,
  })
  const sockets = new Set<SubscriptionSocket>()
  let closing = false

  /** Opens the stream, then the socket: errors go to the client as an error frame on the open socket. */
  const serve = async (
    nsid: keyof Subscriptions,
    handler: SubscriptionHandler,
    req: IncomingMessage,
    raw: Duplex,
    head: Buffer,
  ) => {
    const log = app.log.child({ nsid })
    let stream: SubscriptionStream | undefined
    let refusal: unknown
    try {
      stream = await handler({ params: parseParams(ctx, nsid, req), db, ctx: handlerCtx, log, request: req })
    } catch (err) {
      refusal = err
    }
    let upgraded = false
    // Gone before its socket opened (or its handshake was malformed): nobody reads the stream.
    const abandoned = () => {
      if (!upgraded) stream?.abandon()
    }
    if (raw.destroyed) return abandoned()
    if (closing) {
      abandoned()
      return refuseUpgrade(raw, 503, 'ServiceUnavailable', 'The server is shutting down; connect again')
    }
    raw.once('close', abandoned)
    wss.handleUpgrade(req, raw, head, (ws) => {
      upgraded = true
      const socket = new SubscriptionSocket(ws, raw, {
        pingMs: config.WEBSOCKET_PING_SECONDS * 1000,
        log,
      })
      sockets.add(socket)
      socket.signal.addEventListener('abort', () => sockets.delete(socket))
      if (!stream) return socket.failWith(refusal)
      stream.run(socket).catch((err: unknown) => socket.failWith(err))
    })
  }

  app.server.on('upgrade', (req: IncomingMessage, raw: Duplex, head: Buffer) => {
    const path = (req.url ?? '').split('?')[0] ?? ''
    const nsid = path.startsWith('/xrpc/') ? path.slice('/xrpc/'.length) : undefined
    const handler = nsid !== undefined ? handlers[nsid as keyof Subscriptions] : undefined
    if (!handler) {
      return nsid === undefined
        ? refuseUpgrade(raw, 404, 'NotFound', `No WebSocket at ${path}`)
        : refuseUpgrade(raw, 501, 'MethodNotImplemented', `${nsid} is not a subscription of this server`)
    }
    // The HTTP server's idle timeout is for requests: a subscriber is kept by pings.
    if ('setTimeout' in raw && typeof raw.setTimeout === 'function') raw.setTimeout(0)
    void serve(nsid as keyof Subscriptions, handler as SubscriptionHandler, req, raw, head)
  })

  for (const nsid of Object.keys(handlers)) {
    app.get(`/xrpc/${nsid}`, async () => {
      throw new XRPCErrorWithHeaders(
        426,
        `${nsid} is a subscription: open a WebSocket (Upgrade: websocket) to this URL`,
        'UpgradeRequired',
        { upgrade: 'websocket' },
      )
    })
  }

  app.addHook('preClose', async () => {
    closing = true
    for (const socket of sockets) socket.close(CloseCode.GoingAway, 'server shutting down')
  })
}
