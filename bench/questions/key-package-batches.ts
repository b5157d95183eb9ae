import { randomUUID } from 'node:crypto'
import { encodeBase64, keyPackageItem, NSID, SUITE, TestDevice, TestUser } from '../../test/helpers/index.js'
import type { HttpRequest } from '../client.js'
import { cycle, httpLoad, measure, type Run } from '../load.js'
import { atMost, fixed, table, type Section } from '../report.js'
import { median } from '../rounds.js'
import { log, type Bench } from '../setup.js'

const BATCH = 100
/** Below MAX_KEY_PACKAGES_PER_USER: each owner publishes this many per variant and round. */
const PER_OWNER = 100
const CONNECTIONS = 4

/** One round's packages of one variant: real ts-mls key packages of fresh devices, made ahead, as requests. */
async function madeAhead(bench: Bench, count: number, batched: boolean): Promise<HttpRequest[]> {
  const { load } = bench.small
  const requests: HttpRequest[] = []
  for (let made = 0; made < count; made += PER_OWNER) {
    const owner = await TestUser.create()
    const device = await TestDevice.of(owner)
    const [first, ...packages] = await device.keyPackages(PER_OWNER + 1)
    // Registered with one package, as the iOS client registers before it publishes.
    const { deviceId } = await load.api.ok<{ deviceId: string }>(owner, NSID.registerDevice, {
      input: device.registration([first!]),
    })
    const nsid = batched ? NSID.publishKeyPackages : NSID.publishKeyPackage
    await load.api.tokens.mint([owner], [nsid])
    if (batched) {
      // As the iOS client sends them: each item with its own key and its device.
      const items = packages.map((data) => ({ ...keyPackageItem(data), idempotencyKey: randomUUID(), deviceId }))
      for (let i = 0; i < items.length; i += BATCH) {
        requests.push(load.api.request(owner, nsid, { input: { keyPackages: items.slice(i, i + BATCH) } }))
      }
    } else {
      for (const data of packages) {
        const input = { keyPackage: encodeBase64(data), cipherSuite: SUITE, idempotencyKey: randomUUID() }
        requests.push(load.api.request(owner, nsid, { input }))
      }
    }
  }
  return requests
}

interface Variant {
  name: string
  batched: boolean
  runs: Run[]
}

/**
 * Key packages published one per request (publishKeyPackage) and a hundred
 * per request (publishKeyPackages, each item keyed and naming its device,
 * as the iOS client sends them), side by side: the server's CPU per key
 * package. Every package is a real one, made ahead by fresh devices; each
 * run publishes `perRound` of them, and every one must be stored.
 */
export async function keyPackageBatches(bench: Bench): Promise<Section> {
  const { rounds } = bench.settings.rounds
  const perRound = bench.settings.keyPackageBatch
  log(`publishKeyPackage and publishKeyPackages: ${perRound} key packages per run, ${rounds} rounds`)
  const { server } = bench.small
  const variants: Variant[] = [
    { name: 'publishKeyPackage, one per request', batched: false, runs: [] },
    { name: `publishKeyPackages, ${BATCH} per request`, batched: true, runs: [] },
  ]
  // A warm-up pass, then the variants one after the other in every round.
  for (let round = 0; round <= rounds; round++) {
    for (const variant of variants) {
      const requests = await madeAhead(bench, perRound, variant.batched)
      const run = await measure(bench.meters(server), () =>
        httpLoad({
          url: server.url,
          connections: Math.min(CONNECTIONS, requests.length),
          seconds: 300,
          amount: requests.length,
          next: cycle(requests),
          check: (body) => {
            const output = JSON.parse(body) as { available?: number; succeeded?: number; failed?: number }
            if (variant.batched ? output.succeeded !== BATCH || output.failed !== 0 : output.available === undefined) {
              throw new Error(`not every key package was stored: ${body.slice(0, 300)}`)
            }
          },
        }),
      )
      const perPackage = run.cpu.app / (variant.batched ? BATCH : 1)
      console.log(`  round ${round} ${variant.name.padEnd(36)} ${fixed(perPackage, 0)} µs server CPU per key package`)
      if (round > 0) variant.runs.push(run)
    }
  }
  const [single, batched] = variants as [Variant, Variant]
  const perPackage = (variant: Variant, process: 'app' | 'postgres', run: Run) =>
    run.cpu[process] / (variant.batched ? BATCH : 1)
  const ratio = median(
    batched.runs.map((run, i) => perPackage(batched, 'app', run) / perPackage(single, 'app', single.runs[i]!)),
  )
  return {
    targets: [
      atMost(`10. publishKeyPackages of ${BATCH}: server CPU per key package / publishKeyPackage's`, ratio, 1.5),
    ],
    markdown: [
      '### Publishing key packages one by one and in batches',
      '',
      `${perRound} real key packages (ts-mls, Ed25519, each made by a registered device) per run, published one per request with an idempotency key ` +
        `(\`publishKeyPackage\`) or ${BATCH} per request, each item with its own idempotency key and its device (\`publishKeyPackages\`, as the iOS client sends them); ` +
        `${CONNECTIONS} connections; the server checks each package (decoding, KeyPackageRef, signature, credential, lifetime) and stores a batch in one statement. ` +
        `Medians over ${rounds} rounds after a warm-up pass; the ratio is the median of the per-round ratios.`,
      '',
      table(
        ['variant', 'key packages/s', 'server CPU µs per key package', 'PostgreSQL CPU µs per key package'],
        variants.map((variant) => [
          variant.name,
          fixed(median(variant.runs.map((run) => run.rps * (variant.batched ? BATCH : 1))), 0),
          fixed(median(variant.runs.map((run) => perPackage(variant, 'app', run))), 0),
          fixed(median(variant.runs.map((run) => perPackage(variant, 'postgres', run))), 0),
        ]),
      ),
      '',
    ],
  }
}
