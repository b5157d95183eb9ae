/**
 * `npm run bench`: builds the production code, sets up PostgreSQL, the
 * servers and their data (setup.ts), asks each question of questions/ in
 * turn, and writes what they answer into BENCHMARKS.md (report.ts).
 *
 *   --quick     smaller data, fewer and shorter rounds
 *   --cpu-prof  also writes V8 CPU profiles of the server processes (open them in Chrome DevTools)
 */
import { cleanupUnderLoad } from './questions/cleanup.js'
import { explain } from './questions/explain.js'
import { fanOut } from './questions/fanout.js'
import { readHeaders } from './questions/header-reads.js'
import { keyPackageBatches } from './questions/key-package-batches.js'
import { keyPackageContention } from './questions/key-packages.js'
import { pushUnderLoad } from './questions/push.js'
import { retentionUnderLoad } from './questions/retention.js'
import { countRoundTrips } from './questions/round-trips.js'
import { scale } from './questions/scale.js'
import { sendThroughput } from './questions/send-throughput.js'
import { webSocketFanOut } from './questions/websocket.js'
import { renderResults, writeBenchmarksFile } from './report.js'
import { setUp } from './setup.js'

const args = process.argv.slice(2)
const bench = await setUp({ quick: args.includes('--quick'), cpuProfile: args.includes('--cpu-prof') })
try {
  const headerReads = await readHeaders(bench)
  const roundTrips = await countRoundTrips(bench)
  const throughput = await sendThroughput(bench)
  const sections = [
    throughput,
    headerReads(throughput.serverCpuPerSend),
    roundTrips,
    await keyPackageContention(bench),
    await keyPackageBatches(bench),
    await cleanupUnderLoad(bench),
    await retentionUnderLoad(bench),
    await scale(bench),
    await explain(bench),
    await fanOut(bench),
    await pushUnderLoad(bench),
    await webSocketFanOut(bench),
  ]
  const markdown = renderResults(await bench.environment(args), sections)
  console.log(`\n${markdown}`)
  console.log(`written to ${writeBenchmarksFile(markdown)}`)
} finally {
  await bench.tearDown()
}
