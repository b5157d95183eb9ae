import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { freePort, listens } from './net.js'

/** Where Debian's `pgbouncer` package puts the binary, or one on PATH. */
export function findPgBouncer(): string | undefined {
  const dirs = ['/usr/sbin', '/usr/local/sbin', '/usr/bin', ...(process.env.PATH ?? '').split(path.delimiter)]
  return dirs.map((dir) => path.join(dir, 'pgbouncer')).find((file) => existsSync(file))
}

export const NO_PGBOUNCER = 'no pgbouncer binary (Debian: apt-get install pgbouncer)'

export interface RunningPgBouncer {
  /** `target` with PgBouncer's host and port: every database of the cluster, through the pooler. */
  url: string
  stop(): Promise<void>
}

/**
 * PgBouncer in transaction mode (what operators put in front of PostgreSQL
 * at scale) in front of the cluster of `target`, a connection string with
 * the superuser's password: any database, any client (auth_type any), at
 * most `poolSize` server connections per database. The timeouts the server
 * sets on its connections are startup parameters, which PgBouncer refuses
 * unless told to ignore them (docs/operating.md says how to keep them behind a
 * pooler; `options` carries the Citus setting of delegated writes); prepared statements need PgBouncer 1.21 with
 * max_prepared_statements, so behind an older one the server runs with
 * DATABASE_PREPARED_STATEMENTS=false.
 */
export async function startPgBouncer(binary: string, target: string, poolSize = 40): Promise<RunningPgBouncer> {
  const server = new URL(target)
  const dir = await mkdtemp(path.join(tmpdir(), 'catbird-pgbouncer-'))
  // As root, PgBouncer runs as postgres (it refuses root), which must read its files and write its log.
  await chmod(dir, 0o777)
  const port = await freePort()
  // None for a server that trusts local connections (a Citus cluster of scripts/citus.sh): PgBouncer refuses `password=''`.
  const password = decodeURIComponent(server.password)
  await writeFile(
    path.join(dir, 'pgbouncer.ini'),
    `[databases]
* = host=${server.hostname} port=${server.port} user=${decodeURIComponent(server.username)}${password ? ` password='${password.replace(/'/g, "''")}'` : ''}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = ${port}
unix_socket_dir =
auth_type = any
pool_mode = transaction
default_pool_size = ${poolSize}
max_client_conn = 1000
ignore_startup_parameters = statement_timeout,idle_in_transaction_session_timeout,extra_float_digits,options
logfile = ${path.join(dir, 'pgbouncer.log')}
`,
    { mode: 0o644 },
  )
  const asRoot = process.getuid?.() === 0
  const child: ChildProcess = spawn(binary, [...(asRoot ? ['-u', 'postgres'] : []), path.join(dir, 'pgbouncer.ini')], {
    stdio: 'ignore',
  })
  let running = true
  const exited = new Promise<void>((resolve) =>
    child.once('exit', () => {
      running = false
      resolve()
    }),
  )
  for (let waited = 0; !(await listens(port)); waited += 50) {
    if (!running || waited > 10_000) {
      const log = await readFile(path.join(dir, 'pgbouncer.log'), 'utf8').catch(() => '')
      throw new Error(`PgBouncer did not start: ${log.trim().split('\n').slice(-3).join(' | ')}`)
    }
    await sleep(50)
  }
  const url = new URL(target)
  url.port = String(port)
  return {
    url: url.href,
    async stop() {
      child.kill('SIGTERM')
      await exited
      await rm(dir, { recursive: true, force: true })
    },
  }
}
