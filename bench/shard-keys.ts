/**
 * sendMessage on plain PostgreSQL before and after migration 006 (every
 * key holds its shard key). pgbench runs the statement the server
 * sends (prepared) against two databases of one cluster, one migrated to
 * 005 and one to 006, seeded alike, in interleaved rounds; the statement is
 * the same on both, so the difference is the schema's.
 *
 *   npx tsx bench/shard-keys.ts [rounds] [seconds]
 */
import { createHash, randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { createBenchDatabase, startEmbeddedCluster } from './database.js'
import { buildProduction, loadDist } from './dist.js'
import { sendStatement, type SendArgs } from './peer.js'
import { findPgbench, pgbenchSends } from './pgbench.js'
import { median } from './rounds.js'

const [rounds = 6, seconds = 10] = process.argv.slice(2).map(Number)
const CONVOS = 2_000
const MEMBERS = 4
const SEED_MESSAGES = 50

const pgbench = findPgbench()
if (!pgbench) throw new Error('pgbench is needed (Debian: apt-get install postgresql-client)')
await buildProduction()
const dist = await loadDist()
const dir = await mkdtemp(path.join(tmpdir(), 'catbird-bench-shard-keys-'))
const cluster = await startEmbeddedCluster(dist, dir)
try {
  const variants: Record<string, { url: string; run: (s: number) => Promise<{ count: number; seconds: number }> }> = {}
  for (const schema of ['005', '006']) {
    const database = await createBenchDatabase(dist, cluster.adminUrl, schema)
    if (schema === '005') await dist.migrateDown(database.db)
    // The same conversations, members and history in both.
    await database.pool.query(`
      INSERT INTO convo (id, group_id, creator_did, cipher_suite, last_seq)
        SELECT 'c' || i, md5(i::text), 'did:plc:m' || i || '_0', 's', ${SEED_MESSAGES} FROM generate_series(1, ${CONVOS}) i;
      INSERT INTO member (convo_id, did) SELECT 'c' || i, 'did:plc:m' || i || '_' || k FROM generate_series(1, ${CONVOS}) i, generate_series(0, ${MEMBERS - 1}) k;
      INSERT INTO message (id, convo_id, seq, sender_did, epoch, ciphertext)
        SELECT gen_random_uuid(), 'c' || i, s, 'did:plc:m' || i || '_0', 0, '\\x00' FROM generate_series(1, ${CONVOS}) i, generate_series(1, ${SEED_MESSAGES}) s;`)
    await database.pool.query('VACUUM ANALYZE')
    const picks: SendArgs[] = []
    for (let i = 1; i <= CONVOS; i++) {
      for (let k = 0; k < MEMBERS; k++) {
        const groupId = createHash('md5').update(String(i)).digest('hex')
        picks.push({ convoId: `c${i}`, sender: `did:plc:m${i}_${k}`, groupId, epoch: 0, ciphertext: randomBytes(256) })
      }
    }
    const run = await pgbenchSends({
      binary: pgbench,
      url: database.url,
      pool: database.pool,
      statement: sendStatement(dist),
      picks,
      dir,
      connections: 16,
    })
    variants[schema] = { url: database.url, run }
    await database.close()
  }
  const tps: Record<string, number[]> = { '005': [], '006': [] }
  for (let round = 0; round < rounds; round++) {
    // Alternate which goes first, so that neither always runs on a warmer machine.
    for (const schema of round % 2 ? ['006', '005'] : ['005', '006']) {
      const { count, seconds: took } = await (variants[schema] as (typeof variants)[string]).run(seconds)
      tps[schema]!.push(count / took)
      console.log(`round ${round + 1} schema ${schema}: ${(count / took).toFixed(0)} sends/s`)
    }
  }
  const before = median(tps['005']!)
  const after = median(tps['006']!)
  console.log(
    `median sends/s: before (005) ${before.toFixed(0)}, after (006) ${after.toFixed(0)}, after/before ${(after / before).toFixed(3)}`,
  )
} finally {
  await cluster.stop()
  await rm(dir, { recursive: true, force: true })
}
