import { NSID, SUITE, TestUser } from '../../test/helpers/index.js'
import { count, insertKeyPackages } from '../data.js'
import { cycle, httpLoad, measure, type Run } from '../load.js'
import { atMost, runsTable, type Section } from '../report.js'
import { log, type Bench } from '../setup.js'

const CALLERS = 20

/**
 * Callers competing for one user's key packages: as many requests as
 * packages, each must get one, and no package may go to two callers.
 */
export async function keyPackageContention(bench: Bench): Promise<Section> {
  log(`getKeyPackages: ${CALLERS} callers, one owner`)
  const { load, server, pool } = bench.small
  const perRound = bench.settings.keyPackages
  const owner = await TestUser.create()
  const callers = load.users.slice(0, CALLERS)
  const nsid = NSID.getKeyPackages
  await load.api.tokens.mint(callers, [nsid])
  const requests = callers.map((caller) =>
    load.api.request(caller, nsid, { params: { dids: [owner.did], cipherSuite: SUITE } }),
  )
  const handed = new Set<string>()
  let handedOut = 0
  let missing = 0
  const runs: Run[] = []
  for (let round = 0; round <= bench.settings.keyPackageRounds; round++) {
    await insertKeyPackages(pool, owner.did, perRound, SUITE, String(round))
    const run = await measure(bench.meters(server), () =>
      httpLoad({
        url: server.url,
        connections: CALLERS,
        seconds: 120,
        amount: perRound,
        next: cycle(requests),
        check: (body) => {
          const output = JSON.parse(body) as { keyPackages: Array<{ keyPackage: string }>; missing?: string[] }
          for (const kp of output.keyPackages) {
            handedOut++
            handed.add(kp.keyPackage)
          }
          missing += output.missing?.length ?? 0
        },
      }),
    )
    // Round 0 warms up; all rounds count towards the double hand-out check.
    if (round > 0) runs.push(run)
    console.log(
      `  round ${round} ${run.rps.toFixed(0)} req/s  p50 ${run.p50.toFixed(2)} ms  p99 ${run.p99.toFixed(2)} ms`,
    )
  }
  if (handed.size !== handedOut) {
    throw new Error(`getKeyPackages handed out ${handedOut} packages but only ${handed.size} distinct ones`)
  }
  const consumed = await count(
    pool,
    'SELECT count(*) AS n FROM key_package WHERE owner_did = $1 AND consumed_at IS NOT NULL',
    [owner.did],
  )
  return {
    targets: [atMost('6. getKeyPackages: packages handed out twice', handedOut - handed.size, 0, 0)],
    markdown: [
      '### getKeyPackages under contention',
      '',
      `${callers.length} callers (one connection each) claiming one user's key packages, ${perRound} packages per round, as many requests as packages. ` +
        `Handed out: ${handedOut}; distinct: ${handed.size}; consumed in the database: ${consumed}; answered \`missing\`: ${missing}.`,
      '',
      runsTable([['getKeyPackages, one owner', runs]]),
      '',
    ],
  }
}
