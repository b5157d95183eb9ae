/**
 * Push notifications under the send load. A second server process on the
 * small database has push on: its worker sends every message to the other
 * members' devices (one per user), to the APNs stand-in in a process of its
 * own (bench/apns-child.ts: TLS, HTTP/2, a JWT checked on every request).
 * sendMessage on it against the server with push off, rounds interleaved,
 * each push-on round's backlog sent before the next round; then every sender
 * in one 100-member conversation, and how many pushes per second leave.
 */
import { randomBytes } from 'node:crypto'
import path from 'node:path'
import { startBenchApns } from '../apns.js'
import { httpLoad, measure } from '../load.js'
import { atLeast, fixed, runsTable, table, type Section } from '../report.js'
import { interleave, median, ratioOf } from '../rounds.js'
import { CONNECTIONS, log, type Bench } from '../setup.js'
import { createConvos, Workload } from '../workload.js'

const VARIANT = { off: 'sendMessage, push off', on: 'sendMessage, push on' }
const HOT_MEMBERS = 100

export async function pushUnderLoad(bench: Bench): Promise<Section> {
  const { small, settings } = bench
  const { load } = small
  const users = load.users
  // One device with a push token per user: registerDevice's and registerDeviceToken's rows, written directly.
  await small.pool.query(
    `WITH devices AS (
       INSERT INTO device (user_did, device_id, name, signature_public_key, mls_signature_key)
       SELECT did, 'bench-phone', 'bench phone', key, key FROM unnest($1::text[], $2::bytea[]) AS d(did, key)
       RETURNING user_did
     )
     INSERT INTO push_token (user_did, device_id, token) SELECT user_did, 'bench-phone', $3 || md5(user_did) FROM devices`,
    [users.map((u) => u.did), users.map(() => randomBytes(32)), randomBytes(16).toString('hex')],
  )
  const hot = (await createConvos(small.server.url, users.slice(0, HOT_MEMBERS), 1, HOT_MEMBERS))[0]
  if (!hot || users.length < HOT_MEMBERS) throw new Error(`the push bench needs ${HOT_MEMBERS} users`)
  const hotLoad = new Workload(load.api, [hot])

  const apns = await startBenchApns(path.join(bench.work, 'apns-key.p8'))
  try {
    const server = await bench.start(small, 'small-push', { env: apns.env })
    const waiting = async () =>
      Number(
        (
          await small.pool.query<{ n: string }>(
            'SELECT (SELECT count(*) FROM push_outbox) + (SELECT count(*) FROM push_retry) AS n',
          )
        ).rows[0]?.n,
      )
    /** Sends the backlog, and answers how long that took, in seconds. */
    const drain = async () => {
      const started = performance.now()
      while ((await waiting()) > 0) await new Promise((resolve) => setTimeout(resolve, 50))
      return (performance.now() - started) / 1000
    }
    const during: Array<{ pushesPerSecond: number; left: number }> = []
    log(`push: sendMessage with push on / off, then every sender in one ${HOT_MEMBERS}-member conversation`)
    const runs = await interleave(
      [
        bench.variant(VARIANT.off, small.server, () => load.sendMessage(false)),
        {
          name: VARIANT.on,
          run: async (seconds) => {
            const before = await apns.delivered()
            const run = await measure(bench.meters(server), () =>
              httpLoad({ url: server.url, connections: CONNECTIONS, seconds, next: () => load.sendMessage(false) }),
            )
            during.push({ pushesPerSecond: ((await apns.delivered()) - before) / run.seconds, left: await waiting() })
            await drain()
            return run
          },
        },
      ],
      settings.rounds,
    )
    const ratio = ratioOf(runs.get(VARIANT.on) ?? [], runs.get(VARIANT.off) ?? [], 'rps')
    // The rounds after the warm-up ones.
    const measured = during.slice(-settings.rounds.rounds)

    const seconds = settings.rounds.seconds
    const before = await apns.delivered()
    const apnsCpuBefore = await apns.cpuMicros()
    const hotRun = await measure(bench.meters(server), () =>
      httpLoad({ url: server.url, connections: CONNECTIONS, seconds, next: () => hotLoad.sendMessage(false) }),
    )
    const inWindow = (await apns.delivered()) - before
    const left = await waiting()
    const drainSeconds = await drain()
    const pushed = (await apns.delivered()) - before
    const apnsCpu = ((await apns.cpuMicros()) - apnsCpuBefore) / Math.max(1, pushed)

    return {
      targets: [
        atLeast('10. sendMessage with push on / off, req/s', ratio, 0.9),
        {
          measure: `10. (for comparison) pushes per second to the APNs stand-in, every sender in one ${HOT_MEMBERS}-member conversation`,
          figure: pushed / (hotRun.seconds + drainSeconds),
        },
      ],
      markdown: [
        '### Push notifications',
        '',
        'A second server process on the small database with push on: its worker sends each message to every other member’s device ' +
          '(one per user, 3 per message in these conversations), to a local APNs stand-in in a process of its own ' +
          '(`bench/apns-child.ts`: TLS, HTTP/2, the provider token checked on every request). Against the server with push off, ' +
          'rounds interleaved; after each push-on round its backlog is sent before the next round starts.',
        '',
        runsTable([...runs]),
        '',
        table(
          ['push-on rounds', 'pushes/s during the round (median)', 'left queued at its end (median)'],
          [
            [
              measured.length,
              fixed(median(measured.map((d) => d.pushesPerSecond)), 0),
              fixed(median(measured.map((d) => d.left)), 0),
            ],
          ],
        ),
        '',
        `Every sender in one ${HOT_MEMBERS}-member conversation for ${fixed(hotRun.seconds, 1)} s: each message goes to ${HOT_MEMBERS - 1} devices.`,
        '',
        table(
          [
            'sends/s',
            'pushes during the load',
            'pushes/s during the load',
            'queued at its end',
            'then sent in (s)',
            'pushes/s overall',
            'APNs stand-in CPU per push (µs)',
          ],
          [
            [
              fixed(hotRun.rps, 0),
              inWindow,
              fixed(inWindow / hotRun.seconds, 0),
              left,
              fixed(drainSeconds, 1),
              fixed(pushed / (hotRun.seconds + drainSeconds), 0),
              fixed(apnsCpu, 0),
            ],
          ],
        ),
        '',
        '"Queued" counts messages (each for all its devices) and retries; the stand-in takes CPU on this machine that APNs would not.',
        '',
      ],
    }
  } finally {
    await apns.stop()
  }
}
