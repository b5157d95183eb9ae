import { encode } from '@atproto/lex-cbor'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import pg from 'pg'
import { WebSocketServer, type WebSocket } from 'ws'
import { memoryAfterGc, thisProcessCpu } from './cpu.js'
import { answerCommands } from './ipc.js'

/**
 * The bare `ws` broadcasters the WebSocket fan-out is measured beside (see
 * bench/questions/websocket.ts). Nothing but what each needs: no auth, no
 * ordering, no resume, no limits.
 *
 * - Fed over HTTP (the default): sockets join a group by the `group` of
 *   their URL's query; `POST /broadcast?group=g` sends its body, as it is, to
 *   every socket of the group, and answers once every send is handed to the
 *   kernel. No database, no framing of its own.
 * - Fed by PostgreSQL (`--from-database`): what the server must do at the
 *   least for a message sent through another instance. Sockets join with
 *   `convo` and `did`; on each notification of the server's channel it reads
 *   the messages after the last it read, each with its conversation's current
 *   members who may see it, in one prepared statement, encodes each message's
 *   frame once (the server's `#messageEvent`, with @atproto/lex-cbor)
 *   and sends it to those members' sockets. The `follow` command starts it
 *   at the newest message (before its sockets open).
 */
const fromDatabase = process.argv.includes('--from-database')

/** Fed over HTTP: each group's sockets. Fed by PostgreSQL: each conversation's sockets, by member. */
const groups = new Map<string, Set<WebSocket>>()
const convos = new Map<string, Map<string, Set<WebSocket>>>()
let sockets = 0

const server = http.createServer((req, res) => {
  const url = new URL(req.url ?? '/', 'http://peer')
  const chunks: Buffer[] = []
  req.on('data', (chunk: Buffer) => chunks.push(chunk))
  req.on('end', () => {
    const frame = Buffer.concat(chunks)
    const members = [...(groups.get(url.searchParams.get('group') ?? '') ?? [])]
    let left = members.length
    if (left === 0) return res.end()
    for (const socket of members) socket.send(frame, { binary: true }, () => --left === 0 && res.end())
  })
})

/** Adds `socket` to the set under `key` in `index`, until it closes. */
function join(index: Map<string, Set<WebSocket>>, key: string, socket: WebSocket): void {
  const set = index.get(key) ?? new Set()
  index.set(key, set.add(socket))
  sockets++
  socket.on('close', () => {
    set.delete(socket)
    sockets--
  })
}

const wss = new WebSocketServer({ server, perMessageDeflate: false, clientTracking: false })
wss.on('connection', (socket, req) => {
  const query = new URL(req.url ?? '/', 'http://peer').searchParams
  if (!fromDatabase) return join(groups, query.get('group') ?? '', socket)
  const convo = query.get('convo') ?? ''
  const members = convos.get(convo) ?? new Map<string, Set<WebSocket>>()
  convos.set(convo, members)
  join(members, query.get('did') ?? '', socket)
})
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))

interface NewMessage {
  event_id: number
  id: string
  msg_id: string | null
  convo_id: string
  sender_did: string
  ciphertext: Buffer
  epoch: number
  seq: number
  created_at: Date
  content_type: string
  embed_type: string | null
  embed_uri: string | null
  readers: string[]
}

const PAGE = 500
const nextMessages = {
  name: 'next_messages',
  text: `SELECT m.event_id::int, m.id, m.msg_id, m.convo_id, m.sender_did, m.ciphertext, m.epoch::int, m.seq::int,
      m.created_at, m.content_type, m.embed_type, m.embed_uri,
      ARRAY(SELECT did FROM member
        WHERE member.convo_id = m.convo_id AND member.left_at IS NULL AND member.joined_seq < m.seq) AS readers
    FROM message m WHERE m.event_id > $1 ORDER BY m.event_id LIMIT ${PAGE}`,
}
const header = encode({ op: 1, t: '#messageEvent' })

function frameOf(m: NewMessage): Buffer {
  const body = encode({
    cursor: String(m.event_id),
    message: {
      id: m.msg_id ?? m.id,
      convoId: m.convo_id,
      sender: m.sender_did,
      ciphertext: m.ciphertext,
      epoch: m.epoch,
      seq: m.seq,
      createdAt: m.created_at.toISOString(),
      messageType: m.content_type === 'application' ? 'app' : 'commit',
      ...(m.embed_type !== null ? { embedType: m.embed_type } : {}),
      ...(m.embed_uri !== null ? { embedUri: m.embed_uri } : {}),
    },
  })
  return Buffer.concat([header, body])
}

/** A message id never committed (its transaction rolled back) is given up on after this long. */
const GAP_TIMEOUT_MS = 10_000

let client: pg.Client | undefined
/** Every message id up to here has been sent (or given up on); those above it that have been sent. */
let watermark = 0
const sent = new Set<number>()
/** When the lowest missing id above the watermark was first found missing. */
let gapSince: number | undefined
let reading: Promise<void> | undefined
let readAgain = false

/**
 * Sends the messages committed since the last read, each once. Ids are
 * drawn at insert but commits land in any order, so reads start at the
 * watermark, below the first id still missing, until it comes (or is given
 * up on): a message read above it is sent at once (the server holds it back
 * to keep each stream's order, which is more than the least).
 */
async function readNew(db: pg.Client): Promise<void> {
  for (let from = watermark, full = true; full || readAgain;) {
    readAgain = false
    const { rows } = await db.query<NewMessage>({ ...nextMessages, values: [from] })
    for (const m of rows) {
      if (sent.has(m.event_id)) continue
      sent.add(m.event_id)
      const members = convos.get(m.convo_id)
      if (!members) continue
      const frame = frameOf(m)
      for (const did of m.readers) for (const socket of members.get(did) ?? []) socket.send(frame, { binary: true })
    }
    const before = watermark
    while (sent.delete(watermark + 1)) watermark++
    if (sent.size === 0 || watermark > before) gapSince = undefined
    else if (gapSince === undefined) gapSince = Date.now()
    else if (Date.now() - gapSince > GAP_TIMEOUT_MS) {
      watermark = Math.min(...sent) - 1
      gapSince = undefined
    }
    // A full page may have more behind it: read on from its end.
    full = rows.length === PAGE
    from = full ? (rows[PAGE - 1] as NewMessage).event_id : watermark
  }
}

if (fromDatabase) {
  client = new pg.Client({ connectionString: process.env.DATABASE_URL })
  await client.connect()
  const db = client
  db.on('notification', () => {
    if (sockets === 0) return
    if (reading) readAgain = true
    else reading = readNew(db).finally(() => (reading = undefined))
  })
  await db.query('LISTEN catbird_message')
}

answerCommands(
  {
    cpuMicros: thisProcessCpu,
    memory: memoryAfterGc,
    follow: async () => {
      const { rows } = await (client as pg.Client).query<{ last: number }>(
        'SELECT coalesce(max(event_id), 0)::int AS last FROM message',
      )
      watermark = (rows[0] as { last: number }).last
      sent.clear()
      return null
    },
    stop: async () => {
      server.closeAllConnections()
      await new Promise((resolve) => server.close(resolve))
      await client?.end()
      return null
    },
  },
  `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
)
