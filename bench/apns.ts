import { fork } from 'node:child_process'
import { writeFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { testSigningKey, type TestSigningKey } from '../test/helpers/index.js'

export type ApnsCommand = 'delivered' | 'cpuMicros' | 'stop'
export type ApnsMessage = { ready: { origin: string; caFile: string; topic: string } } | { id: number; result: number }

export interface BenchApns {
  /** The settings that send a server's pushes there, trusting its CA as an operator would (NODE_EXTRA_CA_CERTS). */
  env: Record<string, string>
  /** Pushes it took (answered 200) so far. */
  delivered(): Promise<number>
  cpuMicros(): Promise<number>
  stop(): Promise<void>
}

/** The APNs stand-in in a process of its own (apns-child.ts), with a signing key made for it. */
export async function startBenchApns(keyFile: string): Promise<BenchApns> {
  const key: TestSigningKey = testSigningKey()
  const child = fork(fileURLToPath(new URL('./apns-child.ts', import.meta.url)), [], {
    execArgv: ['--import', 'tsx'],
    env: { ...process.env, APNS_KEY_PEM: key.pem, APNS_KEY_ID: key.keyId, APNS_TEAM_ID: key.teamId },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  })
  const pending = new Map<number, (result: number) => void>()
  let lastId = 0
  const ready = await new Promise<{ origin: string; caFile: string; topic: string }>((resolve, reject) => {
    child.on('message', (message: ApnsMessage) => {
      if ('ready' in message) return resolve(message.ready)
      pending.get(message.id)?.(message.result)
      pending.delete(message.id)
    })
    child.once('exit', () => reject(new Error('the APNs stand-in exited')))
  })
  const run = (command: ApnsCommand) =>
    new Promise<number>((resolve) => {
      const id = ++lastId
      pending.set(id, resolve)
      child.send({ id, command })
    })
  await writeFile(keyFile, key.pem, { mode: 0o600 })
  return {
    env: {
      APNS_KEY_FILE: keyFile,
      APNS_KEY_ID: key.keyId,
      APNS_TEAM_ID: key.teamId,
      APNS_TOPIC: ready.topic,
      APNS_ENDPOINT: ready.origin,
      NODE_EXTRA_CA_CERTS: ready.caFile,
      PUSH_POLL_INTERVAL_MS: '20',
    },
    delivered: () => run('delivered'),
    cpuMicros: () => run('cpuMicros'),
    async stop() {
      const exited = new Promise((resolve) => child.once('exit', resolve))
      await run('stop')
      await exited
    },
  }
}
