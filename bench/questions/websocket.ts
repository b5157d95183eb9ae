/**
 * WebSocket fan-out and idle cost, each beside its anchor:
 *
 * - fan-out: one conversation of `members` members with a socket each, and
 *   `convos` conversations of 10 members with a socket each (of `users`
 *   users, one socket per membership). Messages are sent one after another,
 *   round-robin over the conversations; each socket counts its frames and
 *   when they arrive (the k-th frame of a socket is the k-th message of its
 *   conversation: one sender, one at a time). Events per second are frames
 *   delivered over the time from the first send to the last arrival;
 *   latency is from a send's start to its frame's arrival. The anchor: a
 *   bare `ws` server (bench/ws-peer-child.ts) with as many sockets in the
 *   same groups, sent the very frame bytes the server sent, by the same loop.
 * - idle: `idle` sockets of the server opened and left alone, then as many
 *   SSE streams: the server process's resident memory after a full
 *   collection, beside its memory before, per stream (the kernel's socket
 *   buffers are not in it).
 *
 * The server encodes a frame once per event (src/api/events/subscribeConvoEvents.ts,
 * `frameOf`) and hands the same bytes to every socket.
 */
import WebSocket from 'ws'
import {
  openStream,
  SeedClient,
  subscriptionUrl,
  ticketOf,
  TestUser,
  xrpcClient,
  type SseStream,
} from '../../test/helpers/index.js'
import { percentile } from '../load.js'
import { atLeast, atMost, fixed, table, type Section } from '../report.js'
import type { BenchServer } from '../server.js'
import { log, type Bench } from '../setup.js'

const CONVO_SIZE = 10
/** Sockets opened at a time. */
const OPENING = 50

/** A socket of the bench: when each frame arrived, and the first frame's bytes. */
interface Receiver {
  ws: WebSocket
  group: number
  arrivals: number[]
  first: Buffer | undefined
}

function receive(url: string, group: number): Promise<Receiver> {
  const ws = new WebSocket(url, { perMessageDeflate: false })
  const receiver: Receiver = { ws, group, arrivals: [], first: undefined }
  ws.on('message', (data: Buffer) => {
    receiver.arrivals.push(performance.now())
    receiver.first ??= data
  })
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(receiver))
    ws.once('error', reject)
  })
}

async function inBatches<T, R>(items: T[], open: (item: T) => Promise<R>): Promise<R[]> {
  const opened: R[] = []
  for (let i = 0; i < items.length; i += OPENING)
    opened.push(...(await Promise.all(items.slice(i, i + OPENING).map(open))))
  return opened
}

interface FanOut {
  sockets: number
  events: number
  delivered: number
  eventsPerSecond: number
  p50Ms: number
  p99Ms: number
}

/**
 * Sends `messages` messages one after another, message k to group k % groups,
 * and reads what the receivers got: each receiver's j-th frame is the j-th send to its group.
 */
async function drive(
  receivers: Receiver[],
  groups: number,
  messages: number,
  send: (group: number) => Promise<void>,
): Promise<FanOut> {
  const starts: number[][] = Array.from({ length: groups }, () => [])
  const expected = receivers.reduce(
    (n, r) => n + Math.floor(messages / groups) + (r.group < messages % groups ? 1 : 0),
    0,
  )
  const first = performance.now()
  for (let k = 0; k < messages; k++) {
    ;(starts[k % groups] as number[]).push(performance.now())
    await send(k % groups)
  }
  const deadline = performance.now() + 30_000
  const delivered = () => receivers.reduce((n, r) => n + r.arrivals.length, 0)
  while (delivered() < expected && performance.now() < deadline) await new Promise((r) => setTimeout(r, 20))
  const latencies: number[] = []
  let last = first
  for (const r of receivers) {
    r.arrivals.forEach((at, j) => {
      latencies.push(at - ((starts[r.group] as number[])[j] as number))
      last = Math.max(last, at)
    })
  }
  latencies.sort((a, b) => a - b)
  return {
    sockets: receivers.length,
    events: expected,
    delivered: delivered(),
    eventsPerSecond: (delivered() / (last - first)) * 1000,
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
  }
}

const closeAll = (receivers: Receiver[]) => receivers.forEach((r) => r.ws.terminate())

/** The same fan-out on the bare broadcaster, with the frame the server sent. */
async function onBarePeer(peer: BenchServer, groupsOf: number[], messages: number, frame: Buffer): Promise<FanOut> {
  const wsUrl = peer.url.replace(/^http/, 'ws')
  const receivers = await inBatches(groupsOf, (group) => receive(`${wsUrl}/?group=${group}`, group))
  try {
    return await drive(receivers, Math.max(...groupsOf) + 1, messages, async (group) => {
      const res = await fetch(`${peer.url}/broadcast?group=${group}`, { method: 'POST', body: frame })
      await res.arrayBuffer()
    })
  } finally {
    closeAll(receivers)
  }
}

/** Conversations, and for each the members that subscribe to it. */
async function conversations(seed: SeedClient, shape: { users: number; convos: number; size: number }) {
  const users = await Promise.all(Array.from({ length: shape.users }, () => TestUser.create()))
  const convos: Array<{ id: string; members: TestUser[] }> = []
  for (let c = 0; c < shape.convos; c++) {
    const members = Array.from({ length: shape.size }, (_, i) => users[(c * shape.size + i) % users.length] as TestUser)
    const [creator, ...others] = members as [TestUser, ...TestUser[]]
    const convo = await seed.createConvo(creator)
    // addMembers takes 50 DIDs at a time, each batch with its commit and Welcome.
    for (let i = 0; i < others.length; i += 50) {
      const res = await seed.addMembers(creator, convo.id, others.slice(i, i + 50))
      if (res.status !== 200) throw new Error(`addMembers: ${res.status} ${JSON.stringify(res.body)}`)
    }
    convos.push({ id: convo.id, members })
  }
  return convos
}

async function fanOutPair(
  bench: Bench,
  peer: BenchServer,
  shape: { users: number; convos: number; size: number },
  messages: number,
) {
  const url = bench.small.server.url
  const t = { ...xrpcClient(url), url }
  const seed = new SeedClient(t)
  const convos = await conversations(seed, shape)
  const subscriptions = convos.flatMap((convo, group) => convo.members.map((member) => ({ member, group })))
  const receivers = await inBatches(subscriptions, async ({ member, group }) => {
    const convoId = (convos[group] as { id: string }).id
    return receive(subscriptionUrl(url, { convoId, ticket: await ticketOf(t, member, convoId) }), group)
  })
  let server: FanOut
  try {
    server = await drive(receivers, convos.length, messages, async (group) => {
      const convo = convos[group] as { id: string; members: TestUser[] }
      const res = await seed.sendMessage(convo.members[0] as TestUser, convo.id)
      if (res.status !== 200) throw new Error(`sendMessage: ${res.status}`)
    })
  } finally {
    closeAll(receivers)
  }
  const frame = receivers.find((r) => r.first)?.first
  if (!frame) throw new Error('no frame arrived')
  const bare = await onBarePeer(
    peer,
    subscriptions.map((s) => s.group),
    messages,
    frame,
  )
  return { server, bare }
}

/** The server process's resident memory per stream while `count` streams of one kind sit idle. */
async function idleCost(bench: Bench, count: number, open: (user: TestUser) => Promise<() => void>) {
  const server = bench.small.server
  const users = await Promise.all(Array.from({ length: 10 }, () => TestUser.create()))
  const before = await server.run('memory')
  const closers = await inBatches(
    Array.from({ length: count }, (_, i) => users[i % users.length] as TestUser),
    open,
  )
  const during = await server.run('memory')
  closers.forEach((close) => close())
  return {
    perStreamKiB: (during.rss - before.rss) / count / 1024,
    heapPerStreamKiB: (during.heapUsed - before.heapUsed) / count / 1024,
  }
}

export async function webSocketFanOut(bench: Bench): Promise<Section> {
  const { members, convos, users, messages, idle } = bench.settings.webSockets
  const peer = await bench.start(bench.small, 'ws-peer', { peer: 'ws' })
  log(`WebSocket fan-out: one conversation of ${members}`)
  const one = await fanOutPair(bench, peer, { users: members, convos: 1, size: members }, messages)
  log(`WebSocket fan-out: ${convos} conversations of ${CONVO_SIZE}`)
  const many = await fanOutPair(bench, peer, { users, convos, size: CONVO_SIZE }, messages)

  const url = bench.small.server.url
  const t = { ...xrpcClient(url), url }
  log(`idle: ${idle} WebSockets, then ${idle} SSE streams`)
  const webSockets = await idleCost(bench, idle, async (user) => {
    const r = await receive(subscriptionUrl(url, { ticket: await ticketOf(t, user) }), 0)
    return () => r.ws.terminate()
  })
  const sse = await idleCost(bench, idle, async (user) => {
    const stream: SseStream = await openStream(url, user)
    return () => stream.close()
  })

  const ratio = (f: { server: FanOut; bare: FanOut }) => f.server.eventsPerSecond / f.bare.eventsPerSecond
  const row = (name: string, f: FanOut) => [
    name,
    f.sockets,
    `${f.delivered} / ${f.events}`,
    fixed(f.eventsPerSecond, 0),
    fixed(f.p50Ms, 1),
    fixed(f.p99Ms, 1),
  ]
  return {
    targets: [
      atLeast('WebSocket fan-out, one conversation: events/s beside bare ws', ratio(one), 0.8),
      atLeast(`WebSocket fan-out, ${convos} conversations: events/s beside bare ws`, ratio(many), 0.8),
      atMost('idle WebSocket: KiB per socket beyond the kernel', webSockets.perStreamKiB, 20, 1),
    ],
    markdown: [
      '### WebSocket fan-out',
      '',
      `Messages sent one after another (${messages}), round-robin over the conversations; every member has a socket ` +
        'on its conversation. Events per second are frames delivered from the first send to the last arrival; latency ' +
        'from a send to its frame. Beside each: a bare `ws` server, sent the very frame bytes the server sent, by the ' +
        'same loop, to as many sockets in the same groups.',
      '',
      table(
        ['run', 'sockets', 'delivered', 'events/s', 'p50 ms', 'p99 ms'],
        [
          row(`server, 1 conversation of ${members}`, one.server),
          row('bare ws', one.bare),
          row(`server, ${convos} conversations of ${CONVO_SIZE}`, many.server),
          row('bare ws', many.bare),
        ],
      ),
      '',
      `### Idle streams: ${idle} on one server process`,
      '',
      'Resident memory of the server process per stream (after a full collection, beside before), and its JS heap:',
      '',
      table(
        ['stream', 'KiB per stream (RSS)', 'KiB per stream (heap)'],
        [
          ['WebSocket', fixed(webSockets.perStreamKiB, 1), fixed(webSockets.heapPerStreamKiB, 1)],
          ['SSE', fixed(sse.perStreamKiB, 1), fixed(sse.heapPerStreamKiB, 1)],
        ],
      ),
      '',
    ],
  }
}
