/**
 * The bench's stand-in for APNs (test/helpers/apns-server.ts) in a process
 * of its own, so that taking pushes does not slow the load generator: it
 * says where it listens and where its CA is, and answers how many pushes it
 * took and how much CPU it used (see apns.ts).
 */
import { createPublicKey } from 'node:crypto'
import { startTestApnsServer } from '../test/helpers/index.js'
import type { ApnsCommand, ApnsMessage } from './apns.js'
import { thisProcessCpu } from './cpu.js'

const pem = process.env.APNS_KEY_PEM ?? ''
const server = await startTestApnsServer({
  key: {
    keyId: process.env.APNS_KEY_ID ?? '',
    teamId: process.env.APNS_TEAM_ID ?? '',
    pem,
    publicKey: createPublicKey(pem),
  },
  record: false,
})
const send = (message: ApnsMessage, then: () => void = () => {}) => process.send?.(message, then)
process.on('message', ({ id, command }: { id: number; command: ApnsCommand }) => {
  void (async () => {
    if (command === 'delivered') return send({ id, result: server.deliveredCount() })
    if (command === 'cpuMicros') return send({ id, result: await thisProcessCpu() })
    await server.close()
    send({ id, result: 0 }, () => process.exit(0))
  })()
})
send({ ready: { origin: server.origin, caFile: await server.caFile(), topic: server.topic } })
