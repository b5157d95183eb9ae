import { randomBytes } from 'node:crypto'
import { createDatabase } from './src/db/index.js'
import { claimKey } from './src/idempotency/store.js'
import { createConvo } from './src/services/convos.js'
const database = createDatabase({ url: process.env.DATABASE_URL!, poolSize: 2, delegatedWrites: process.env.DELEGATE === '1' })
const groupId = randomBytes(16).toString('hex')
const { convoIdOf } = await import('./src/services/convos.js')
const claim = await claimKey(database.pool, { shardKey: convoIdOf(groupId), scope: randomBytes(32), callerDid: 'did:plc:x', nsid: 'n', fingerprint: randomBytes(32), ttlSeconds: 60 }, 1000)
console.log(claim.kind)
if (claim.kind === 'claimed') {
  try {
    const r = await createConvo(claim.transaction.db, { creator: 'did:plc:x', groupId, cipherSuite: 's', initialMembers: [], welcomeRetentionDays: 14 })
    await claim.transaction.commit(200, JSON.stringify({ id: r.convo.id }))
    console.log('ok')
  } catch (e) { console.log('ERR', (e as any).code, (e as Error).message); await claim.transaction.abort() }
}
await database.close()
