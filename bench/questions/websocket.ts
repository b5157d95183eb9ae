/**
 * WebSocket fan-out and idle cost, each beside its anchor:
 *
 * - fan-out: one conversation of `members` members with a socket each, and
 *   `convos` conversations of 10 members with a socket each (of `users`
 *   users, one socket per membership). The sockets are held by a server
 *   process of their own (the fan-out instance); messages are sent through
 *   the bench's server, another instance on the same database, as a
 *   deployment of several instances does: the fan-out instance's work is
 *   only hearing of new events, reading them and writing them to sockets.
 *   Messages (real MLS, made beforehand) go round-robin over the
 *   conversations, SENDERS at a time, one at a time per conversation; each
 *   socket counts its frames and when they arrive (the k-th frame of a
 *   socket is the k-th message of its conversation). Each run starts warm:
 *   a fifth as many sends go first, not counted. Events per second are
 *   frames delivered from the first send to the last arrival; latency is
 *   from a send's start to its frame's arrival; CPU is the process holding
 *   the sockets, per frame delivered. The anchor: a bare `ws` server
 *   (bench/ws-peer-child.ts) with as many sockets in the same groups, sent
 *   the very frame bytes the server sent, by the same loop. Beside both, a
 *   bare `ws` server fed by PostgreSQL as the fan-out instance is (the same
 *   sends, through the bench's server): the least work of hearing of new
 *   messages, reading them with who may see them, and encoding each once,
 *   which is where a design fed by the event log starts. The three are
 *   measured in turn, ROUNDS times, each with its sockets opened anew.
 * - idle: `idle` sockets opened on a fresh server process and left alone,
 *   then as many SSE streams on another: the process's resident memory and
 *   JS heap after a full collection, beside before, per stream (the
 *   kernel's socket buffers are not in it).
 *
 * The server encodes a frame once per event (src/api/events/subscribeConvoEvents.ts)
 * and hands the same bytes to every socket.
 */
import WebSocket from 'ws'
import {
  bytesJson,
  NSID,
  openStream,
  subscriptionUrl,
  ticketOf,
  TestUser,
  xrpcClient,
  type SseStream,
} from '../../test/helpers/index.js'
import { Tokens, Xrpc } from '../client.js'
import { percentile } from '../load.js'
import { atLeast, atMost, fixed, table, type Section } from '../report.js'
import { median } from '../rounds.js'
import type { BenchServer } from '../server.js'
import { log, type Bench } from '../setup.js'
import { createConvos, type Convo } from '../workload.js'

const CONVO_SIZE = 10
/** Sockets opened at a time. */
const OPENING = 50
/** Sends in flight at a time (one per conversation at most). */
const SENDERS = 8
/** Real MLS messages made for each conversation; the sends go round them. */
const MESSAGES_PER_CONVO = 4
/**
 * Sends before each measured run, as a share of its sends, not counted: both
 * processes run their hot code compiled by then, as a server that has been up
 * for a while does (at first V8 runs it unoptimized, and compiles it on the side).
 */
const WARM_UP_SHARE = 0.2
/** Rounds of each fan-out measure, server and bare peer alternating. */
const ROUNDS = 3

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
  /** CPU of the process holding the sockets, per frame delivered, in microseconds. */
  cpuPerFrameMicros: number
}

type Send = (group: number, k: number) => Promise<void>

/**
 * Sends `messages` messages, message k to group k % groups, SENDERS at a
 * time and one at a time per group, and waits until the receivers got them
 * (their frames are counted from none: each receiver's j-th frame is the
 * j-th send to its group). Answers when each group's sends started, and how
 * many frames were due.
 */
async function sendAndWait(receivers: Receiver[], groups: number, messages: number, send: Send) {
  for (const r of receivers) r.arrivals.length = 0
  const starts: number[][] = Array.from({ length: groups }, () => [])
  const expected = receivers.reduce(
    (n, r) => n + Math.floor(messages / groups) + (r.group < messages % groups ? 1 : 0),
    0,
  )
  const previous = new Map<number, Promise<void>>()
  let next = 0
  await Promise.all(
    Array.from({ length: Math.min(SENDERS, groups) }, async () => {
      while (next < messages) {
        const k = next++
        const group = k % groups
        const sent = (async () => {
          await previous.get(group)
          ;(starts[group] as number[]).push(performance.now())
          await send(group, k)
        })()
        previous.set(group, sent)
        await sent
      }
    }),
  )
  const deadline = performance.now() + 60_000
  while (delivered(receivers) < expected && performance.now() < deadline) await new Promise((r) => setTimeout(r, 20))
  return { starts, expected }
}

const delivered = (receivers: Receiver[]) => receivers.reduce((n, r) => n + r.arrivals.length, 0)

/**
 * The fan-out of `messages` sends (sendAndWait), measured from a warm start:
 * a share of as many sends first, whose frames are then forgotten.
 */
async function drive(
  receivers: Receiver[],
  groups: number,
  messages: number,
  holder: BenchServer,
  send: Send,
): Promise<FanOut> {
  await sendAndWait(receivers, groups, Math.ceil(messages * WARM_UP_SHARE), send)
  const cpuBefore = await holder.run('cpuMicros')
  const first = performance.now()
  const { starts, expected } = await sendAndWait(receivers, groups, messages, send)
  const cpu = (await holder.run('cpuMicros')) - cpuBefore
  const latencies: number[] = []
  let last = first
  for (const r of receivers) {
    r.arrivals.forEach((at, j) => {
      latencies.push(at - ((starts[r.group] as number[])[j] as number))
      last = Math.max(last, at)
    })
  }
  latencies.sort((a, b) => a - b)
  const frames = delivered(receivers)
  return {
    sockets: receivers.length,
    events: expected,
    delivered: frames,
    eventsPerSecond: (frames / (last - first)) * 1000,
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
    cpuPerFrameMicros: cpu / frames,
  }
}

const closeAll = (receivers: Receiver[]) => receivers.forEach((r) => r.ws.terminate())

/** Opens sockets, drives a fan-out over them, and closes them. */
async function onSockets(open: () => Promise<Receiver[]>, measure: (receivers: Receiver[]) => Promise<FanOut>) {
  const receivers = await open()
  try {
    return { run: await measure(receivers), frame: receivers.find((r) => r.first)?.first }
  } finally {
    closeAll(receivers)
  }
}

/** The figures of a measure taken in several rounds: each one's median over them. */
function medianFanOut(runs: FanOut[]): FanOut {
  const of = (figure: keyof FanOut) => median(runs.map((run) => run[figure]))
  return {
    sockets: of('sockets'),
    events: of('events'),
    delivered: of('delivered'),
    eventsPerSecond: of('eventsPerSecond'),
    p50Ms: of('p50Ms'),
    p99Ms: of('p99Ms'),
    cpuPerFrameMicros: of('cpuPerFrameMicros'),
  }
}

/**
 * The fan-out of `messages` sends over `shape`'s conversations on the
 * server (sockets on `holder`, sends through the bench's server), then on
 * each bare broadcaster (`fed` hears of the server's messages as the server
 * does, `peer` is sent the server's frames), in ROUNDS rounds, each side's
 * sockets opened for its turn (every set at once would be too many open
 * files in this process): figures are medians over rounds, and each ratio
 * the median of the rounds' ratios, so that a machine whose speed drifts
 * during the measure moves every side alike.
 */
async function fanOutRounds(
  bench: Bench,
  servers: { holder: BenchServer; peer: BenchServer; fed: BenchServer },
  shape: { users: number; convos: number; size: number },
  messages: number,
) {
  const url = bench.small.server.url
  const t = { ...xrpcClient(url), url }
  const users = await Promise.all(Array.from({ length: shape.users }, () => TestUser.create()))
  const convos = await createConvos(url, users, shape.convos, shape.size, MESSAGES_PER_CONVO)
  const api = new Xrpc(url, new Tokens())
  await api.tokens.mint(
    convos.map((c) => c.members[0] as TestUser),
    [NSID.sendMessage],
  )
  const subscriptions = convos.flatMap((convo, group) => convo.members.map((member) => ({ member, group })))
  const convoOf = (group: number) => convos[group] as Convo
  const sendMessage: Send = async (group, k) => {
    const convo = convoOf(group)
    const sender = convo.members[0] as TestUser
    const message = convo.messages[Math.floor(k / convos.length) % MESSAGES_PER_CONVO] as Convo['messages'][number]
    const res = await api.call(sender, NSID.sendMessage, {
      input: { convoId: convo.id, senderDid: sender.did, epoch: 1, ciphertext: bytesJson(message.bytes) },
    })
    if (res.status !== 200) throw new Error(`sendMessage: ${res.status} ${JSON.stringify(res.body)}`)
  }
  // Tickets are single-use: each round opens the server's sockets with new ones.
  const openOnServer = () =>
    inBatches(subscriptions, async ({ member, group }) => {
      const convoId = convoOf(group).id
      return receive(
        subscriptionUrl(servers.holder.url, { convoId, ticket: await ticketOf(t, member, convoId) }),
        group,
      )
    })
  const wsUrl = (peer: BenchServer) => peer.url.replace(/^http/, 'ws')
  const openOnPeer = () =>
    inBatches(subscriptions, ({ group }) => receive(`${wsUrl(servers.peer)}/?group=${group}`, group))
  const openOnFed = async () => {
    await servers.fed.run('follow')
    return inBatches(subscriptions, ({ member, group }) => {
      const query = new URLSearchParams({ convo: convoOf(group).id, did: member.did })
      return receive(`${wsUrl(servers.fed)}/?${query}`, group)
    })
  }
  const server: FanOut[] = []
  const bare: FanOut[] = []
  const fed: FanOut[] = []
  for (let round = 1; round <= ROUNDS; round++) {
    const onServer = await onSockets(openOnServer, (receivers) =>
      drive(receivers, convos.length, messages, servers.holder, sendMessage),
    )
    // The bare peer is sent the very frame the server sent.
    const frame = onServer.frame
    if (!frame) throw new Error('no frame arrived')
    const onPeer = await onSockets(openOnPeer, (receivers) =>
      drive(receivers, convos.length, messages, servers.peer, async (group) => {
        const res = await fetch(`${servers.peer.url}/broadcast?group=${group}`, { method: 'POST', body: frame })
        await res.arrayBuffer()
      }),
    )
    const onFed = await onSockets(openOnFed, (receivers) =>
      drive(receivers, convos.length, messages, servers.fed, sendMessage),
    )
    server.push(onServer.run)
    bare.push(onPeer.run)
    fed.push(onFed.run)
    log(
      `  round ${round}/${ROUNDS}: CPU µs per frame, server ${fixed(onServer.run.cpuPerFrameMicros, 1)},` +
        ` bare ws ${fixed(onPeer.run.cpuPerFrameMicros, 1)}, fed by PostgreSQL ${fixed(onFed.run.cpuPerFrameMicros, 1)}`,
    )
  }
  /** Frames per CPU-second of the server beside a bare side's: the median of the rounds' ratios. */
  const ratioTo = (side: FanOut[]) =>
    median(server.map((run, i) => (side[i] as FanOut).cpuPerFrameMicros / run.cpuPerFrameMicros))
  return {
    server: medianFanOut(server),
    bare: medianFanOut(bare),
    fed: medianFanOut(fed),
    ratio: ratioTo(bare),
    ratioToFed: ratioTo(fed),
  }
}

/** The resident memory and heap per stream of a fresh server process while `count` streams of one kind sit idle. */
async function idleCost(
  bench: Bench,
  name: string,
  count: number,
  open: (url: string, user: TestUser) => Promise<() => void>,
) {
  const server = await bench.start(bench.small, name)
  const users = await Promise.all(Array.from({ length: 10 }, () => TestUser.create()))
  const before = await server.run('memory')
  const closers = await inBatches(
    Array.from({ length: count }, (_, i) => users[i % users.length] as TestUser),
    (user) => open(server.url, user),
  )
  const during = await server.run('memory')
  closers.forEach((close) => close())
  await server.stop()
  return {
    perStreamKiB: (during.rss - before.rss) / count / 1024,
    heapPerStreamKiB: (during.heapUsed - before.heapUsed) / count / 1024,
  }
}

export async function webSocketFanOut(bench: Bench): Promise<Section> {
  const { members, convos, users, messages, idle } = bench.settings.webSockets
  const servers = {
    peer: await bench.start(bench.small, 'ws-peer', { peer: 'ws' }),
    fed: await bench.start(bench.small, 'ws-fed-peer', { peer: 'ws-from-database' }),
    holder: await bench.start(bench.small, 'ws-fanout'),
  }
  log(`WebSocket fan-out: one conversation of ${members}`)
  const one = await fanOutRounds(bench, servers, { users: members, convos: 1, size: members }, messages.one)
  log(`WebSocket fan-out: ${convos} conversations of ${CONVO_SIZE}`)
  const many = await fanOutRounds(bench, servers, { users, convos, size: CONVO_SIZE }, messages.many)

  const t = { ...xrpcClient(bench.small.server.url), url: bench.small.server.url }
  log(`idle: ${idle} WebSockets, then ${idle} SSE streams, each on a fresh server process`)
  const webSockets = await idleCost(bench, 'ws-idle', idle, async (url, user) => {
    const r = await receive(subscriptionUrl(url, { ticket: await ticketOf(t, user) }), 0)
    return () => r.ws.terminate()
  })
  const sse = await idleCost(bench, 'sse-idle', idle, async (url, user) => {
    const stream: SseStream = await openStream(url, user)
    return () => stream.close()
  })

  const perCore = (f: FanOut) => 1e6 / f.cpuPerFrameMicros
  const row = (name: string, f: FanOut) => [
    name,
    f.sockets,
    `${f.delivered} / ${f.events}`,
    fixed(f.eventsPerSecond, 0),
    fixed(f.p50Ms, 1),
    fixed(f.p99Ms, 1),
    fixed(f.cpuPerFrameMicros, 1),
    fixed(perCore(f), 0),
  ]
  return {
    targets: [
      atLeast('WebSocket fan-out, one conversation: frames per CPU-second beside bare ws', one.ratio, 0.8),
      atLeast(`WebSocket fan-out, ${convos} conversations: frames per CPU-second beside bare ws`, many.ratio, 0.8),
      { measure: '(for comparison) one conversation, beside bare ws fed by PostgreSQL', figure: one.ratioToFed },
      {
        measure: `(for comparison) ${convos} conversations, beside bare ws fed by PostgreSQL`,
        figure: many.ratioToFed,
      },
      atMost('idle WebSocket: KiB per socket beyond the kernel', webSockets.perStreamKiB, 20, 1),
    ],
    markdown: [
      '### WebSocket fan-out',
      '',
      `Every member has a socket on its conversation, held by a server process of their own; messages ` +
        `(${messages.one} to the one conversation, ${messages.many} over the many) are sent through another ` +
        `instance on the same database, ${SENDERS} at a time, one at a time per conversation, after a warm-up ` +
        `of ${WARM_UP_SHARE * 100}% as many sends (not counted); ${ROUNDS} rounds, server and bare peers in turn, ` +
        "each with its sockets opened anew: figures are medians over rounds, the targets' ratios the median of the rounds' ratios. Events per second " +
        'are frames delivered from the first send to the last arrival; latency from a send to its frame; CPU is ' +
        "the socket-holding process's, per frame. Beside each: a bare `ws` server, sent the very frame bytes the " +
        "server sent, by the same loop, to as many sockets in the same groups (the targets' anchor); and a bare " +
        '`ws` server fed by PostgreSQL as the server is, sent the same messages through the same instance: on each ' +
        "notification it reads the new messages, each with its conversation's current members, in one prepared " +
        "statement, encodes each frame once (with lex-cbor), and sends it to those members' sockets " +
        '(no auth, no per-stream order, no resume, no limits).',
      '',
      table(
        ['run', 'sockets', 'delivered', 'events/s', 'p50 ms', 'p99 ms', 'CPU µs per frame', 'frames per CPU-second'],
        [
          row(`server, 1 conversation of ${members}`, one.server),
          row('bare ws', one.bare),
          row('bare ws fed by PostgreSQL', one.fed),
          row(`server, ${convos} conversations of ${CONVO_SIZE}`, many.server),
          row('bare ws', many.bare),
          row('bare ws fed by PostgreSQL', many.fed),
        ],
      ),
      '',
      `### Idle streams: ${idle} on one server process`,
      '',
      'Resident memory of a fresh server process per stream (after a full collection, beside before), and its JS heap:',
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
