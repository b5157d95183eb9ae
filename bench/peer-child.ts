import Fastify from 'fastify'
import { NSID } from '../src/lexicon/types/index.js'
import { thisProcessCpu } from './cpu.js'
import { loadDist } from './dist.js'
import { answerCommands } from './ipc.js'
import { sendPrepared, sendStatement } from './peer.js'

/**
 * The bare-Fastify peer (see BENCHMARKS.md): it takes the server's very
 * sendMessage request and reads what the server reads to store it, the
 * sender's DID from the body and the group id and epoch from the MLS header
 * (the production build's reader), then runs the very statement of
 * sendMessage as a named prepared statement on a pool made as the server's.
 * No auth (the token goes unread), no lexicon validation, no idempotency,
 * no logs or metrics: what the server does beyond this is its overhead.
 */
const dist = await loadDist()
const config = dist.loadConfig()
if (!config.DATABASE_URL) throw new Error('DATABASE_URL is required')
// The server's pool, made as server-child.ts makes it (the same settings: idle connections last as long).
const database = dist.createDatabase({ url: config.DATABASE_URL, poolSize: config.DATABASE_POOL_SIZE })
const statement = sendStatement(dist)

/** The part of sendMessage's input the peer reads. */
interface Body {
  convoId: string
  senderDid: string
  ciphertext: { $bytes: string }
}

const app = Fastify()
app.post<{ Body: Body }>(`/xrpc/${NSID.sendMessage}`, async (request) => {
  const { convoId, senderDid, ciphertext } = request.body
  const bytes = Buffer.from(ciphertext.$bytes, 'base64')
  const { groupId, epoch } = dist.readMessageHeader(bytes)
  return sendPrepared(database.pool, statement, { convoId, sender: senderDid, groupId, epoch, ciphertext: bytes })
})

answerCommands(
  {
    cpuMicros: thisProcessCpu,
    stop: async () => {
      await app.close()
      await database.close()
      return null
    },
  },
  await app.listen({ host: '127.0.0.1', port: 0 }),
)
