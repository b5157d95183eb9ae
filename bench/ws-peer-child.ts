import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { WebSocketServer, type WebSocket } from 'ws'
import { memoryAfterGc, thisProcessCpu } from './cpu.js'
import { answerCommands } from './ipc.js'

/**
 * The bare `ws` broadcaster the WebSocket fan-out is measured beside (see
 * bench/questions/websocket.ts): sockets join a group by the `group` of
 * their URL's query; `POST /broadcast?group=g` sends its body, as it is, to
 * every socket of the group, and answers once every send is handed to the
 * kernel. Nothing else: no auth, no database, no framing of its own.
 */
const groups = new Map<string, Set<WebSocket>>()
const server = http.createServer((req, res) => {
  const url = new URL(req.url ?? '/', 'http://peer')
  const chunks: Buffer[] = []
  req.on('data', (chunk: Buffer) => chunks.push(chunk))
  req.on('end', () => {
    const frame = Buffer.concat(chunks)
    const sockets = [...(groups.get(url.searchParams.get('group') ?? '') ?? [])]
    let left = sockets.length
    if (left === 0) return res.end()
    for (const socket of sockets) socket.send(frame, { binary: true }, () => --left === 0 && res.end())
  })
})
const wss = new WebSocketServer({ server, perMessageDeflate: false, clientTracking: false })
wss.on('connection', (socket, req) => {
  const group = new URL(req.url ?? '/', 'http://peer').searchParams.get('group') ?? ''
  const members = groups.get(group) ?? new Set()
  groups.set(group, members.add(socket))
  socket.on('close', () => members.delete(socket))
})
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))

answerCommands(
  {
    cpuMicros: thisProcessCpu,
    memory: memoryAfterGc,
    stop: async () => {
      server.closeAllConnections()
      await new Promise((resolve) => server.close(resolve))
      return null
    },
  },
  `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
)
