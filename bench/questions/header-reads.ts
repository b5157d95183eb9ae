import { message, SeedClient, type TestUser, xrpcClient } from '../../test/helpers/index.js'
import { atMost, fixed, table, type Section } from '../report.js'
import { median } from '../rounds.js'
import { log, type Bench } from '../setup.js'
import { PLAINTEXT_BYTES, type Convo } from '../workload.js'

interface ParseCost {
  message: string
  bytes: number
  /** CPU time of one header read, in microseconds. */
  micros: number
}

const CALLS = 50_000
const REPEATS = 5

/**
 * What reading an MLS message header costs the server per sendMessage: the
 * production build's reader on real messages, timed in this process over
 * many calls after a warm-up (the median of a few repeats).
 */
function timeReads(read: (bytes: Uint8Array) => unknown, samples: Array<{ message: string; bytes: Uint8Array }>) {
  return samples.map(({ message, bytes }): ParseCost => {
    for (let i = 0; i < CALLS; i++) read(bytes)
    const runs = Array.from({ length: REPEATS }, () => {
      const start = process.cpuUsage()
      for (let i = 0; i < CALLS; i++) read(bytes)
      const used = process.cpuUsage(start)
      return (used.user + used.system) / CALLS
    })
    return { message, bytes: bytes.length, micros: median(runs) }
  })
}

/**
 * The header read of every sendMessage, on real messages: a typical one of
 * the load, a large one (64 KiB of text), and a commit. Its section weighs
 * each read against the server CPU per sendMessage without key, which is
 * measured later: it is made once that is known.
 */
export async function readHeaders(bench: Bench): Promise<(serverCpuPerSend: number) => Section> {
  log('reading MLS message headers')
  const { load } = bench.small
  const convo = load.convos[0] as Convo
  const member = convo.members[0] as TestUser
  const update = await new SeedClient(xrpcClient(load.api.url)).prepareCommit(member, convo.id)
  const costs = timeReads(bench.dist.readMessageHeader, [
    { message: `application message, ${PLAINTEXT_BYTES} bytes of text (the load's)`, bytes: load.sample() },
    { message: 'application message, 64 KiB of text', bytes: await message(member, convo.id, new Uint8Array(65536)) },
    { message: 'commit (a key update), PrivateMessage', bytes: update.commit },
  ])
  return (serverCpuPerSend) => {
    const share = (micros = Number.NaN) => micros / serverCpuPerSend
    return {
      targets: [
        atMost(
          '9. MLS header read of a typical message / server CPU per sendMessage without key',
          share(costs[0]?.micros),
          0.05,
          3,
        ),
      ],
      markdown: [
        '### Reading the MLS header',
        '',
        "sendMessage reads every message's MLS header (wire format, group id, epoch, content type) before storing it. CPU time of one read " +
          `by the production build's \`src/mls\` on real messages, in the bench process (median of ${REPEATS} repeats of ` +
          `${CALLS.toLocaleString('en')} reads after a warm-up), and as a share of the server CPU per sendMessage without key measured above.`,
        '',
        table(
          ['message', 'bytes', 'µs per read', 'share of server CPU per sendMessage'],
          costs.map((p) => [p.message, p.bytes, fixed(p.micros), `${fixed(share(p.micros) * 100, 2)}%`]),
        ),
        '',
      ],
    }
  }
}
