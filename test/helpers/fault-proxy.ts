import http from 'node:http'
import net, { type AddressInfo } from 'node:net'

/**
 * What the proxy does to one request:
 * - dropRequest: close the client's connection before forwarding (the server never sees it);
 * - dropResponse: forward, let the server finish, then close the client's connection instead of replying;
 * - delay: forward after a pause, and reply normally;
 * - resetMidResponse: forward, send the status, headers and half the body, then close the connection.
 */
export type Fault = 'dropRequest' | 'dropResponse' | 'delay' | 'resetMidResponse'

const ALL_FAULTS: readonly Fault[] = ['dropRequest', 'dropResponse', 'delay', 'resetMidResponse']

export interface FaultProxyOptions {
  /** The server's base URL. */
  target: string
  /** Share of requests that get a fault, 0 to 1. */
  faultRate: number
  /** Seeds the random choices, so a run's sequence of decisions can be replayed. */
  seed: number
  /** The faults chosen from (uniformly). Default: all. */
  faults?: readonly Fault[]
  /** Longest pause of a `delay` fault. Default 50 ms. */
  maxDelayMs?: number
}

export interface FaultProxy {
  url: string
  /** Requests seen, by what was done to them. */
  counts: Record<Fault | 'none', number>
  /** Responses the server marked as idempotent replays (Idempotent-Replayed: true). */
  replayed: number
  close(): Promise<void>
}

/** mulberry32: small, fast, and plenty for picking faults. */
function seededRandom(seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'content-length'])

interface UpstreamResponse {
  status: number
  headers: http.OutgoingHttpHeaders
  body: Buffer
}

/** An HTTP proxy in front of a real server that breaks a seeded share of the exchanges. */
export async function startFaultProxy(opts: FaultProxyOptions): Promise<FaultProxy> {
  const target = new URL(opts.target)
  const faults = opts.faults ?? ALL_FAULTS
  const maxDelayMs = opts.maxDelayMs ?? 50
  const random = seededRandom(opts.seed)
  const agent = new http.Agent({ keepAlive: true })
  const counts: FaultProxy['counts'] = { none: 0, dropRequest: 0, dropResponse: 0, delay: 0, resetMidResponse: 0 }
  let replayed = 0

  const forward = (req: http.IncomingMessage, body: Buffer) =>
    new Promise<UpstreamResponse>((resolve, reject) => {
      const upstream = http.request(
        {
          host: target.hostname,
          port: target.port,
          method: req.method,
          path: req.url,
          headers: { ...req.headers, host: target.host },
          agent,
        },
        (res) => {
          const chunks: Buffer[] = []
          res.on('data', (chunk: Buffer) => chunks.push(chunk))
          res.on('error', reject)
          res.on('end', () => {
            const headers = Object.fromEntries(Object.entries(res.headers).filter(([name]) => !HOP_BY_HOP.has(name)))
            resolve({ status: res.statusCode ?? 502, headers, body: Buffer.concat(chunks) })
          })
        },
      )
      upstream.on('error', reject)
      upstream.end(body)
    })

  const server = http.createServer(async (req, res) => {
    const fault = random() < opts.faultRate ? faults[Math.floor(random() * faults.length)]! : 'none'
    counts[fault]++
    const chunks: Buffer[] = []
    for await (const chunk of req) chunks.push(chunk as Buffer)
    if (fault === 'dropRequest') {
      req.socket.destroy()
      return
    }
    if (fault === 'delay') await new Promise((resolve) => setTimeout(resolve, random() * maxDelayMs))

    let answer: UpstreamResponse
    try {
      answer = await forward(req, Buffer.concat(chunks))
    } catch {
      res.writeHead(502).end()
      return
    }
    if (answer.headers['idempotent-replayed'] === 'true') replayed++
    if (fault === 'dropResponse') {
      req.socket.destroy()
      return
    }
    res.writeHead(answer.status, { ...answer.headers, 'content-length': answer.body.length })
    if (fault === 'resetMidResponse') {
      res.write(answer.body.subarray(0, Math.floor(answer.body.length / 2)), () => req.socket.destroy())
      return
    }
    res.end(answer.body)
  })

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    counts,
    get replayed() {
      return replayed
    },
    async close() {
      server.closeAllConnections()
      await new Promise<void>((resolve, reject) => server.close((err) => (err ? reject(err) : resolve())))
      agent.destroy()
    },
  }
}

/** A loopback URL where nothing listens: every connection is refused. */
export async function refusingUrl(): Promise<string> {
  const server = net.createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  await new Promise((resolve) => server.close(resolve))
  return `http://127.0.0.1:${port}`
}

/** One direction of a proxied TCP connection: bytes, then maybe the end. */
class Relay {
  private held: Array<Buffer | 'end'> = []

  constructor(
    private readonly to: net.Socket,
    private readonly holding: () => boolean,
  ) {}

  get holdsBytes(): boolean {
    return this.held.length > 0
  }

  push(item: Buffer | 'end'): void {
    if (this.holding()) this.held.push(item)
    else this.deliver(item)
  }

  flush(): void {
    for (const item of this.held.splice(0)) this.deliver(item)
  }

  private deliver(item: Buffer | 'end'): void {
    if (this.to.destroyed) return
    if (item === 'end') this.to.end()
    else this.to.write(item)
  }
}

export interface TcpProxy {
  /** The target URL with the proxy's host and port. */
  url: string
  /**
   * Stops forwarding in both directions, connections kept open, as a
   * SIGSTOPped server looks from outside: new connections are accepted and
   * nothing is answered. Bytes sent meanwhile are held.
   */
  freeze(): void
  /**
   * Forwards again. By default the held bytes are delivered (as after
   * SIGCONT). With `lose`, they are lost, as in a network partition: the
   * clients' side of every connection that held some is cut, and the
   * server's side stays open without a word, so the server never learns.
   */
  thaw(opts?: { lose?: boolean }): void
  /** Cuts every open connection at once, both sides, without a word (as a network that drops them). */
  cut(): void
  /** Connections it has accepted so far. */
  readonly accepted: number
  close(): Promise<void>
}

/** A TCP proxy in front of `targetUrl` (any URL with a host and port) that can freeze. */
export async function startTcpProxy(targetUrl: string): Promise<TcpProxy> {
  const target = new URL(targetUrl)
  let frozen = false
  const holding = () => frozen
  const connections = new Set<{ client: net.Socket; up: Relay; down: Relay }>()
  const sockets = new Set<net.Socket>()
  const track = (socket: net.Socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
  }

  let accepted = 0
  const server = net.createServer((client) => {
    accepted++
    const upstream = net.connect(Number(target.port), target.hostname)
    track(client)
    track(upstream)
    const connection = { client, up: new Relay(upstream, holding), down: new Relay(client, holding) }
    connections.add(connection)
    client.on('data', (chunk: Buffer) => connection.up.push(chunk))
    client.on('end', () => connection.up.push('end'))
    upstream.on('data', (chunk: Buffer) => connection.down.push(chunk))
    upstream.on('end', () => connection.down.push('end'))
    // A reset reaches the other side as an end, in order after held bytes.
    client.on('error', () => connection.up.push('end'))
    upstream.on('error', () => connection.down.push('end'))
    let open = 2
    const closed = () => --open === 0 && connections.delete(connection)
    client.on('close', closed)
    upstream.on('close', closed)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const url = new URL(targetUrl)
  url.hostname = '127.0.0.1'
  url.port = String((server.address() as AddressInfo).port)

  return {
    url: url.href,
    freeze() {
      frozen = true
    },
    thaw(opts = {}) {
      frozen = false
      for (const connection of connections) {
        if (opts.lose && (connection.up.holdsBytes || connection.down.holdsBytes)) {
          connection.client.destroy()
          connections.delete(connection)
          continue
        }
        connection.up.flush()
        connection.down.flush()
      }
    },
    cut() {
      for (const socket of sockets) socket.resetAndDestroy()
    },
    get accepted() {
      return accepted
    },
    async close() {
      for (const socket of sockets) socket.destroy()
      await new Promise<void>((resolve, reject) => server.close((err) => (err ? reject(err) : resolve())))
    },
  }
}
