import Fastify from 'fastify'
import pg from 'pg'
import { thisProcessCpu } from './cpu.js'
import { loadDist } from './dist.js'
import { answerCommands } from './ipc.js'
import { sendPrepared, sendStatement } from './peer.js'

/**
 * The bare-Fastify peer (see BENCHMARKS.md): one route running the very
 * statement of sendMessage as a named prepared statement on a pg pool of the
 * server's size; no auth, no lexicon validation, no MLS header read, no
 * logs or metrics. What the server does beyond this is its overhead.
 */
const dist = await loadDist()
const config = dist.loadConfig()
if (!config.DATABASE_URL) throw new Error('DATABASE_URL is required')
const pool = new pg.Pool({ connectionString: config.DATABASE_URL, max: config.DATABASE_POOL_SIZE })
const compiler = dist.createDatabase({ url: config.DATABASE_URL, poolSize: 1 })
const statement = sendStatement(dist, compiler)
await compiler.close()

interface Body {
  convoId: string
  sender: string
  groupId: string
  epoch: number
  ciphertext: { $bytes: string }
}

const app = Fastify()
app.post<{ Body: Body }>('/send', async (request) => {
  const { convoId, sender, groupId, epoch, ciphertext } = request.body
  return sendPrepared(pool, statement, {
    convoId,
    sender,
    groupId,
    epoch,
    ciphertext: Buffer.from(ciphertext.$bytes, 'base64'),
  })
})

answerCommands(
  {
    cpuMicros: thisProcessCpu,
    stop: async () => {
      await app.close()
      await pool.end()
      return null
    },
  },
  await app.listen({ host: '127.0.0.1', port: 0 }),
)
