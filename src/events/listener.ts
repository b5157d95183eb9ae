import type { FastifyBaseLogger } from 'fastify'
import pg from 'pg'

/**
 * A session connection that LISTENs on some channels and keeps doing so:
 * when the connection is lost it reconnects (every second until it
 * succeeds) and says so with `onListening`, since notifications sent while
 * it was away are lost. A session of its own: LISTEN does not survive a
 * pooler in transaction mode, so it may go straight to PostgreSQL.
 */
export class Listener {
  private client: pg.Client | undefined
  private reconnectTimer: NodeJS.Timeout | undefined
  private stopped = false

  constructor(
    private readonly opts: {
      connection: pg.ClientConfig
      channels: string[]
      log: FastifyBaseLogger
      onNotification(channel: string, payload: string): void
      /** Listening (again): anything sent meanwhile was missed. */
      onListening(): void
    },
  ) {}

  async start(): Promise<void> {
    const client = new pg.Client(this.opts.connection)
    client.on('notification', ({ channel, payload }) => this.opts.onNotification(channel, payload ?? ''))
    client.on('error', (err) => {
      this.opts.log.warn({ err }, 'event listener connection lost; reconnecting')
      this.reconnect(client)
    })
    client.on('end', () => this.reconnect(client))
    await client.connect()
    await client.query(this.opts.channels.map((channel) => `LISTEN ${channel}`).join('; '))
    this.client = client
    this.opts.onListening()
  }

  private reconnect(dead: pg.Client): void {
    if (this.stopped || this.client !== dead || this.reconnectTimer) return
    this.client = undefined
    dead.removeAllListeners('end')
    void dead.end().catch(() => {})
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined
      this.start().catch((err: unknown) => {
        this.opts.log.warn({ err }, 'event listener reconnect failed')
        this.client = dead
        this.reconnect(dead)
      })
    }, 1_000)
    this.reconnectTimer.unref()
  }

  async stop(): Promise<void> {
    this.stopped = true
    clearTimeout(this.reconnectTimer)
    const client = this.client
    this.client = undefined
    client?.removeAllListeners('end')
    await client?.end().catch(() => {})
  }
}
