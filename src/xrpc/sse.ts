import type { FastifyBaseLogger, FastifyReply } from 'fastify'

/** One Server-Sent Event: `id` (what a client resumes from, as Last-Event-ID) and a JSON payload. */
export const sseEvent = (id: string, data: unknown): string => `id: ${id}\ndata: ${JSON.stringify(data)}\n\n`

export interface SseOptions {
  /** How often an idle stream gets a comment, so proxies and clients see it is alive. */
  keepAliveMs: number
  /** Unsent bytes the stream may queue before the client counts as too slow. */
  maxBufferBytes: number
  log: FastifyBaseLogger
}

/**
 * The transport of an event stream: takes over the reply, writes events and
 * keep-alives, and closes (once) when the client goes away, reads too
 * slowly, or the server says so. `signal` aborts on close.
 */
export class SseStream {
  private readonly closer = new AbortController()
  private readonly keepAlive: NodeJS.Timeout
  private lastEventId: string | undefined

  constructor(
    private readonly reply: FastifyReply,
    private readonly opts: SseOptions,
  ) {
    reply.hijack()
    const raw = reply.raw
    raw.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    })
    this.keepAlive = setInterval(() => raw.write(': keep-alive\n\n'), opts.keepAliveMs)
    raw.on('close', () => this.close('client went away'))
    // Gone while the stream was being opened: its 'close' came before anyone listened.
    if (raw.destroyed) this.close('client went away')
    else raw.write(': stream open\n\n')
  }

  get signal(): AbortSignal {
    return this.closer.signal
  }

  /** Writes one event (see sseEvent); a client that does not read is cut off rather than buffered without bound. */
  send(id: string, event: string): void {
    if (this.signal.aborted) return
    const raw = this.reply.raw
    raw.write(event)
    this.lastEventId = id
    if (raw.writableLength > this.opts.maxBufferBytes) this.close('slow consumer')
  }

  close(reason: string): void {
    if (this.signal.aborted) return
    this.opts.log.info({ reason, lastEventId: this.lastEventId }, 'event stream closed')
    this.closer.abort()
    clearInterval(this.keepAlive)
    this.reply.raw.end()
  }
}
