import os from 'node:os'
import { mkdtemp, chmod, rm } from 'node:fs/promises'
import path from 'node:path'
import { Tokens, Xrpc } from './client.js'
import { postgresCpu, thisProcessCpu } from './cpu.js'
import { createBenchDatabase, startCluster } from './database.js'
import { buildProduction, loadDist } from './dist.js'
import { keyPackageBatches } from './questions/key-package-batches.js'
import { startBenchServer } from './server.js'
import type { Bench } from './setup.js'

await buildProduction()
const dist = await loadDist()
const work = await mkdtemp(path.join(os.tmpdir(), 'catbird-try-'))
await chmod(work, 0o755)
const cluster = await startCluster(dist, work)
const small = await createBenchDatabase(dist, cluster.adminUrl, 'small')
const server = await startBenchServer({ databaseUrl: small.url, logFile: path.join(work, 'small.log') })
const postgres = await postgresCpu(small.pool)
try {
  const bench = {
    settings: { rounds: { rounds: Number(process.env.ROUNDS ?? 3), seconds: 1, warmupSeconds: 1 }, keyPackageBatch: Number(process.env.PER ?? 300) },
    small: { ...small, server, load: { api: new Xrpc(server.url, new Tokens()) } },
    meters: () => ({ app: () => server.run('cpuMicros'), loadGenerator: thisProcessCpu, ...(postgres ? { postgres } : {}) }),
  } as unknown as Bench
  const section = await keyPackageBatches(bench)
  console.log(section.targets, section.markdown.join('\n'))
} finally {
  await server.stop()
  await small.drop()
  await cluster.stop()
  await rm(work, { recursive: true, force: true })
}
