/**
 * SSE fan-out latency: N open event streams on one conversation; for each
 * message, the time from the sendMessage reply to its event arriving on
 * every stream.
 */
import { openStream, SeedClient, type SseStream, TestUser, xrpcClient } from '../../test/helpers/index.js'
import { percentile } from '../load.js'
import { fixed, table, type Section } from '../report.js'
import { log, type Bench } from '../setup.js'

/** Below the server's default per-caller stream limit (5). */
const STREAMS_PER_USER = 4

interface FanoutResult {
  streams: number
  streamsPerUser: number
  messages: number
  /** Events expected (streams x messages) and received. */
  expected: number
  delivered: number
  p50Ms: number
  p99Ms: number
  maxMs: number
}

async function runFanoutBench(opts: { url: string; streams: number; messages: number }): Promise<FanoutResult> {
  const seed = new SeedClient(xrpcClient(opts.url))
  const users = await Promise.all(
    Array.from({ length: Math.ceil(opts.streams / STREAMS_PER_USER) }, () => TestUser.create()),
  )
  const [sender, ...others] = users as [TestUser, ...TestUser[]]
  const convo = await seed.createConvo(sender)
  // addMembers takes 50 DIDs at a time, each batch with its commit and Welcome.
  for (let i = 0; i < others.length; i += 50) {
    const res = await seed.addMembers(sender, convo.id, others.slice(i, i + 50))
    if (res.status !== 200) throw new Error(`addMembers: ${res.status} ${JSON.stringify(res.body)}`)
  }

  const streams: SseStream[] = []
  for (let i = 0; i < opts.streams; i++) {
    const stream = await openStream(opts.url, users[Math.floor(i / STREAMS_PER_USER)] as TestUser, {
      convoId: convo.id,
    })
    if (stream.status !== 200) throw new Error(`stream ${i}: ${stream.status} ${JSON.stringify(stream.body)}`)
    streams.push(stream)
  }

  const latencies: number[] = []
  try {
    for (let m = 0; m < opts.messages; m++) {
      const res = await seed.sendMessage(sender, convo.id)
      const repliedAt = performance.now()
      if (res.status !== 200) throw new Error(`sendMessage: ${res.status}`)
      const id = res.body.messageId
      const isLast = (events: SseStream['events']) =>
        (events.at(-1)?.data.message as { id: string } | undefined)?.id === id
      // One message at a time, so each latency is fan-out rather than queueing behind earlier messages.
      const arrivals = await Promise.all(
        streams.map((stream) =>
          stream.waitFor(isLast, 10_000).then(
            () => performance.now(),
            () => undefined,
          ),
        ),
      )
      for (const at of arrivals) if (at !== undefined) latencies.push(Math.max(0, at - repliedAt))
    }
  } finally {
    streams.forEach((s) => s.close())
  }
  latencies.sort((a, b) => a - b)
  return {
    streams: opts.streams,
    streamsPerUser: STREAMS_PER_USER,
    messages: opts.messages,
    expected: opts.streams * opts.messages,
    delivered: latencies.length,
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
    maxMs: latencies[latencies.length - 1] ?? NaN,
  }
}

export async function fanOut(bench: Bench): Promise<Section> {
  const { streams, messages } = bench.settings.fanout
  log(`SSE fan-out, ${streams} streams`)
  const f = await runFanoutBench({ url: bench.small.server.url, streams, messages })
  return {
    targets: [],
    markdown: [
      '### SSE fan-out',
      '',
      `${f.streams} event streams open on one conversation (${Math.ceil(f.streams / f.streamsPerUser)} members, ${f.streamsPerUser} streams each), ` +
        `served by the same server process; ${f.messages} messages sent one after another. Latency is from the sendMessage reply ` +
        'to the event arriving on a stream, over every (stream, message) pair.',
      '',
      table(
        ['streams', 'events expected', 'delivered', 'p50 ms', 'p99 ms', 'max ms'],
        [[f.streams, f.expected, f.delivered, fixed(f.p50Ms, 1), fixed(f.p99Ms, 1), fixed(f.maxMs, 1)]],
      ),
      '',
    ],
  }
}
