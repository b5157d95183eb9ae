import { fork } from 'node:child_process'
import { closeSync, openSync, readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { SERVICE_DID } from '../test/helpers/index.js'

/** What the bench can ask a server process, and what each command answers. */
export interface ServerCommands {
  /**
   * Statements sent to PostgreSQL so far (one per round trip): by requests, and in the background;
   * transactions requests began, and the requests' statements inside them (BEGIN to COMMIT).
   */
  queries: { request: number; background: number; transactions: number; inTransaction: number }
  /** Counting `queries` is on only between these two (it costs every request; see server-child.ts). */
  startQueryCount: null
  endQueryCount: null
  /** CPU time the server process has used so far, in microseconds. */
  cpuMicros: number
  /** Runs one pass of the idempotency cleanup worker; answers how many records it deleted. */
  cleanupPass: number
  /** The process's memory after a full garbage collection, in bytes. */
  memory: { rss: number; heapUsed: number }
  /** Runs one pass of the retention worker; answers how many messages it deleted. */
  retentionPass: number
  /** The bare `ws` broadcaster fed by PostgreSQL starts at the newest message (bench/ws-peer-child.ts). */
  follow: null
  /** Closes the server and its pool, then exits. */
  stop: null
}

export type ServerRequest = { id: number; command: keyof ServerCommands }
export type ServerMessage = { ready: string } | { id: number; result: unknown } | { id: number; error: string }

export interface BenchServer {
  url: string
  run<K extends keyof ServerCommands>(command: K): Promise<ServerCommands[K]>
  stop(): Promise<void>
}

export interface BenchServerOptions {
  databaseUrl: string
  /** The server's own output (logs, crashes) goes here. */
  logFile: string
  /** Write a V8 CPU profile (`node --cpu-prof`) here when the server stops. */
  cpuProfDir?: string
  /**
   * The bare-Fastify peer (bench/peer-child.ts), or a bare `ws` broadcaster
   * (bench/ws-peer-child.ts), fed over HTTP or by PostgreSQL, instead of the server.
   */
  peer?: boolean | 'ws' | 'ws-from-database'
  /** Settings of its own (push, for one). */
  env?: Record<string, string>
}

const childEntry = (peer: BenchServerOptions['peer']) =>
  fileURLToPath(
    new URL(
      typeof peer === 'string' ? './ws-peer-child.ts' : peer ? './peer-child.ts' : './server-child.ts',
      import.meta.url,
    ),
  )

/**
 * The production build of the server in a process of its own, as `npm start`
 * runs it, so the load generator does not share its event loop.
 */
export async function startBenchServer(opts: BenchServerOptions): Promise<BenchServer> {
  const log = openSync(opts.logFile, 'a')
  const child = fork(childEntry(opts.peer), opts.peer === 'ws-from-database' ? ['--from-database'] : [], {
    execArgv: [
      '--import',
      'tsx',
      '--expose-gc',
      ...(opts.cpuProfDir ? ['--cpu-prof', `--cpu-prof-dir=${opts.cpuProfDir}`] : []),
    ],
    env: {
      ...process.env,
      DATABASE_URL: opts.databaseUrl,
      SERVICE_DID,
      // Request logs at info cost CPU that depends on where logs go; see BENCHMARKS.md.
      LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn',
      // The bench runs the cleanup worker itself, when it measures it.
      WORKER_INTERVAL_SECONDS: String(24 * 3600),
      // The event-stream benches open many streams as few users.
      WEBSOCKET_MAX_SOCKETS_PER_CALLER: '100000',
      SSE_MAX_STREAMS_PER_CALLER: '100000',
      // Its users are did:keys, which Bluesky does not know: no AppView to ask about blocks.
      APPVIEW_URL: 'off',
      ...opts.env,
    },
    stdio: ['ignore', log, log, 'ipc'],
  })
  closeSync(log)
  const failure = (why: string) =>
    new Error(`bench server ${why}; its output:\n${readFileSync(opts.logFile, 'utf8').slice(-4000)}`)

  const pending = new Map<number, { resolve: (value: unknown) => void; reject: (err: Error) => void }>()
  let lastId = 0
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  void exited.then(() => {
    for (const { reject } of pending.values()) reject(failure('exited'))
  })
  const url = await new Promise<string>((resolve, reject) => {
    child.on('message', (message: ServerMessage) => {
      if ('ready' in message) return resolve(message.ready)
      const waiter = pending.get(message.id)
      pending.delete(message.id)
      if ('error' in message) waiter?.reject(new Error(message.error))
      else waiter?.resolve(message.result)
    })
    void exited.then(() => reject(failure('exited before listening')))
  })

  const run = <K extends keyof ServerCommands>(command: K) =>
    new Promise<ServerCommands[K]>((resolve, reject) => {
      const id = ++lastId
      pending.set(id, { resolve: resolve as (value: unknown) => void, reject })
      child.send({ id, command } satisfies ServerRequest)
    })
  return {
    url,
    run,
    async stop() {
      if (child.exitCode !== null) return
      await run('stop')
      await exited
    },
  }
}
