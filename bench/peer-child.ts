import Fastify from 'fastify'
import pg from 'pg'
import { loadDist } from './dist.js'
import { sendPrepared, sendStatement } from './peer.js'
import type { ServerMessage, ServerRequest } from './server.js'

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
const statement = sendStatement(dist)

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

const commands: Partial<Record<ServerRequest['command'], () => Promise<unknown>>> = {
  cpuMicros: async () => {
    const usage = process.cpuUsage()
    return usage.user + usage.system
  },
  stop: async () => {
    await app.close()
    await pool.end()
    return null
  },
}

const send = (message: ServerMessage, then: () => void = () => {}) => process.send?.(message, then)

process.on('message', ({ id, command }: ServerRequest) => {
  const run = commands[command] ?? (async () => Promise.reject(new Error(`the peer has no command ${command}`)))
  run().then(
    (result) => send({ id, result }, command === 'stop' ? () => process.exit(0) : undefined),
    (err: unknown) => send({ id, error: err instanceof Error ? (err.stack ?? err.message) : String(err) }),
  )
})

send({ ready: await app.listen({ host: '127.0.0.1', port: 0 }) })
