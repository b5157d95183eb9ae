/**
 * Runs the write paths of the services on a Citus coordinator
 * (scripts/citus.sh explain): publish a key package, create a conversation,
 * claim a key package, add a member with its Welcome, send a message, fetch
 * and confirm the Welcome, sweep. For each it prints how many distributed
 * transactions committed in two phases (rows Citus adds to
 * pg_dist_transaction) and, for every statement it sent, the Task Count of
 * its distributed plan (1: it ran on one shard).
 */
import { createHash, randomBytes } from 'node:crypto'
import { Kysely, PostgresDialect, type CompiledQuery } from 'kysely'
import { createDatabase } from '../src/db/index.js'
import type { DatabaseSchema } from '../src/db/schema.js'
import { deleteExpiredIdempotencyKeys } from '../src/idempotency/store.js'
import { createConvo } from '../src/services/convos.js'
import { claimKeyPackages, publishKeyPackage } from '../src/services/keyPackages.js'
import { addMembers } from '../src/services/members.js'
import { sendMessage } from '../src/services/messages.js'
import { confirmWelcome, fetchWelcome, sweepWelcomes } from '../src/services/welcomes.js'

const url = process.env.DATABASE_URL
if (!url) throw new Error('DATABASE_URL: the Citus coordinator')
// As the server runs on Citus: the hot writes delegated to their shard's node (src/db/delegated.ts).
const database = createDatabase({ url, poolSize: 4, delegatedWrites: true })
const captured: CompiledQuery[] = []
const db = new Kysely<DatabaseSchema>({
  dialect: new PostgresDialect({ pool: database.pool }),
  log: (event) => void (event.level === 'query' && captured.push(event.query)),
})

const twoPhase = async () =>
  Number((await database.pool.query<{ n: string }>('SELECT count(*) AS n FROM pg_dist_transaction')).rows[0]?.n)

async function step(name: string, run: () => Promise<unknown>): Promise<void> {
  captured.length = 0
  const before = await twoPhase()
  await run()
  const prepared = (await twoPhase()) - before
  console.log(
    `\n## ${name}: ${prepared === 0 ? 'no PREPARE TRANSACTION' : `${prepared} transaction(s) committed in two phases`}`,
  )
  for (const query of captured) {
    const text = query.sql.replace(/\s+/g, ' ').trim()
    if (/^(begin|commit|rollback)/i.test(text)) continue
    const { rows } = await database.pool.query<{ 'QUERY PLAN': string }>(`EXPLAIN ${query.sql}`, [...query.parameters])
    const plan = rows.map((r) => r['QUERY PLAN'])
    const tasks =
      plan
        .filter((line) => /Task Count:/.test(line))
        .map((line) => line.trim())
        .join(', ') || 'no distributed table'
    console.log(`- ${tasks} | ${text.slice(0, 110)}`)
  }
}

const alice = `did:plc:alice${randomBytes(4).toString('hex')}`
const bob = `did:plc:bob${randomBytes(4).toString('hex')}`
const groupId = randomBytes(16).toString('hex')
const suite = 'MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519'
const bobsPackage = randomBytes(64)
const ref = createHash('sha256').update(bobsPackage).digest()

await step('publishKeyPackage (bob)', () =>
  publishKeyPackage(db, {
    owner: bob,
    cipherSuite: suite,
    data: bobsPackage,
    ref,
    expiresAt: new Date(Date.now() + 864e5),
    maxPerUser: 100,
    lastResort: false,
  }),
)
let convoId = ''
await step('createConvo (alice)', async () => {
  convoId = (
    await createConvo(db, { creator: alice, groupId, cipherSuite: suite, initialMembers: [], welcomeRetentionDays: 14 })
  ).convo.id
})
await step("getKeyPackages (alice claims bob's)", () => claimKeyPackages(db, { dids: [bob], claimedBy: alice }))
await step('addMembers (alice adds bob, commit and Welcome)', () =>
  addMembers(db, {
    convoId,
    caller: alice,
    dids: [bob],
    commit: { data: randomBytes(32), groupId, epoch: 0 },
    welcome: { data: randomBytes(32), cipherSuite: suite, keyPackageRefs: [ref] },
    maxMembers: 100,
    welcomeRetentionDays: 14,
  }),
)
await step('sendMessage (alice)', () =>
  sendMessage(db, { convoId, sender: alice, groupId, epoch: 1, ciphertext: randomBytes(48) }),
)
await step('getWelcome (bob)', () => fetchWelcome(db, { convoId, did: bob, graceSeconds: 300 }))
await step('confirmWelcome (bob)', () => confirmWelcome(db, { convoId, did: bob, success: true }))
await step('sweeps (set-based, every shard)', async () => {
  await sweepWelcomes(db, { graceSeconds: 300, retentionDays: 14, batchSize: 100 })
  await deleteExpiredIdempotencyKeys(db, 100)
})
await database.close()
