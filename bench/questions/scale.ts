import { NSID, type TestUser } from '../../test/helpers/index.js'
import { count } from '../data.js'
import { atMost, fixed, millions, runsTable, type Section } from '../report.js'
import { interleave, ratioOf, type Metric } from '../rounds.js'
import { log, type Bench } from '../setup.js'
import { PAGE } from '../workload.js'

const VARIANT = {
  smallGet: 'getMessages, small table',
  largeGet: 'getMessages, large table',
  smallSend: 'sendMessage, small table',
  largeSend: 'sendMessage, large table',
}

/** getMessages and sendMessage on the small database and the large one, side by side. */
export async function scale(bench: Bench): Promise<Section> {
  log('scale: the small database and the large one, side by side')
  const { small, large } = bench
  for (const { load } of [small, large]) {
    const convo = load.convos[0]
    const page = await load.api.ok<{ messages: unknown[] }>(convo?.members[0] as TestUser, NSID.getMessages, {
      params: { convoId: convo?.id as string, limit: PAGE },
    })
    if (page.messages.length !== PAGE) throw new Error(`getMessages gave ${page.messages.length} messages, not a page`)
  }
  await large.load.mintTokens()
  const smallRows = await count(small.pool, 'SELECT count(*) AS n FROM message')
  const largeRows = await count(large.pool, 'SELECT count(*) AS n FROM message')
  const runs = await interleave(
    [
      bench.variant(VARIANT.smallGet, small.server, () => small.load.getMessages()),
      bench.variant(VARIANT.largeGet, large.server, () => large.load.getMessages()),
      bench.variant(VARIANT.smallSend, small.server, () => small.load.sendMessage(false)),
      bench.variant(VARIANT.largeSend, large.server, () => large.load.sendMessage(false)),
    ],
    bench.settings.rounds,
  )
  const ratio = (a: string, b: string, metric: Metric) => ratioOf(runs.get(a) ?? [], runs.get(b) ?? [], metric)
  return {
    targets: [
      atMost('8. getMessages p50, large / small table', ratio(VARIANT.largeGet, VARIANT.smallGet, 'p50'), 1.5),
      atMost('8. getMessages p99, large / small table', ratio(VARIANT.largeGet, VARIANT.smallGet, 'p99'), 1.5),
      atMost('8. sendMessage p50, large / small table', ratio(VARIANT.largeSend, VARIANT.smallSend, 'p50'), 1.5),
      atMost('8. sendMessage p99, large / small table', ratio(VARIANT.largeSend, VARIANT.smallSend, 'p99'), 1.5),
    ],
    markdown: [
      '### Scale',
      '',
      `Two databases side by side, each with its own server process: the small one (${smallRows} messages) and the large one ` +
        `(${millions(largeRows)} messages in ${bench.settings.largeConvos} conversations, ` +
        `${bench.settings.messagesPerLargeConvo.toLocaleString('en')} per conversation, interleaved in time; the users' conversations are among them; ` +
        `loaded in ${fixed(large.loadSeconds, 0)} s). getMessages reads a page of ${PAGE}.`,
      '',
      runsTable([...runs]),
      '',
    ],
  }
}
