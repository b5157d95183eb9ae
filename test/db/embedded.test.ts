import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { chmod, mkdir, mkdtemp, readdir, rm, stat, symlink, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir, userInfo } from 'node:os'
import path from 'node:path'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { embeddedInstallDir, startEmbeddedPostgres, type EmbeddedPostgresOptions } from '../../src/db/embedded.js'
import { type ChildServer, freePort, listens, NSID, startChildServer, TestUser, xrpcClient } from '../helpers/index.js'
import { StartupError } from '../../src/startup-error.js'

const asRoot = userInfo().uid === 0
let base: string

beforeAll(async () => {
  base = await mkdtemp(path.join(tmpdir(), 'catbird-embedded-'))
  // Our own throwaway directory, opened so that PostgreSQL (as `postgres` under root) can use it.
  await chmod(base, 0o755)
})
afterAll(async () => {
  await rm(base, { recursive: true, force: true })
})

async function query(url: string, text: string) {
  const client = new pg.Client(url)
  await client.connect()
  try {
    return (await client.query(text)).rows as Array<Record<string, unknown>>
  } finally {
    await client.end()
  }
}

describe('embedded PostgreSQL in a private directory', () => {
  it('as root, keeps what the postgres user cannot reach where it can, across restarts, without opening the private directory', async () => {
    const home = path.join(base, 'home')
    await mkdir(home, { mode: 0o700 })
    // The binaries too sit inside the private directory, as in a clone under /root.
    await symlink(await embeddedInstallDir(), path.join(home, 'postgres'))
    const logs: string[] = []
    const opts: EmbeddedPostgresOptions = {
      dataDir: path.join(home, 'project', 'data', 'postgres'),
      port: await freePort(),
      installDir: path.join(home, 'postgres'),
      systemDirs: { data: path.join(base, 'lib'), cache: path.join(base, 'cache') },
      log: (msg) => logs.push(msg),
    }
    const first = await startEmbeddedPostgres(opts)
    await query(first.url, 'CREATE TABLE kept (x int)')
    await first.stop()
    const second = await startEmbeddedPostgres(opts)
    try {
      expect(second.dataDir).toBe(first.dataDir)
      expect(await query(second.url, 'SELECT count(*)::int AS n FROM kept')).toEqual([{ n: 0 }])
    } finally {
      await second.stop()
    }
    expect((await stat(home)).mode & 0o777).toBe(0o700)

    if (asRoot) {
      expect(path.dirname(first.dataDir)).toBe(opts.systemDirs?.data)
      const data = await stat(first.dataDir)
      expect(data.uid).toBe(Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' })))
      expect(data.mode & 0o777).toBe(0o700)
      expect(logs).toContain(
        `the postgres user cannot reach ${opts.dataDir}; the embedded PostgreSQL data lives in ${first.dataDir} instead`,
      )
      expect(await readdir(path.join(base, 'cache'))).toEqual([
        expect.stringMatching(new RegExp(`^postgres-17\\.[\\w.-]+-${process.platform}-${process.arch}$`)),
      ])
      // Nothing was created inside the private directory.
      expect(existsSync(path.join(home, 'project'))).toBe(false)
    } else {
      // A normal user runs PostgreSQL itself: its own directories are fine.
      expect(first.dataDir).toBe(opts.dataDir)
    }
  }, 60_000)

  it('stops with one sentence naming the cause and the fix when it cannot place the cluster anywhere', async () => {
    const file = path.join(base, 'a-file')
    await writeFile(file, '')
    const failure = startEmbeddedPostgres({
      dataDir: path.join(file, 'data'),
      port: await freePort(),
      systemDirs: { data: path.join(file, 'lib'), cache: path.join(file, 'cache') },
    })
    await expect(failure).rejects.toThrow(StartupError)
    const { message } = (await failure.catch((err: unknown) => err)) as Error
    expect(message).not.toContain('\n')
    expect(message).toMatch(/; (set EMBEDDED_PG_DATA_DIR|put the project) .*DATABASE_URL\.$/)
  })
})

describe('the lease of a process on its cluster', () => {
  it('is taken again when its connection is terminated, so another process leaving does not stop the cluster', async () => {
    const opts = { dataDir: path.join(base, 'terminated', 'postgres'), port: await freePort() }
    const logs: string[] = []
    const first = await startEmbeddedPostgres({ ...opts, log: (msg) => logs.push(msg) })
    const leases = async () =>
      (await query(first.url, `SELECT pid FROM pg_stat_activity WHERE application_name = 'catbird-mls-ds lease'`)).map(
        (row) => row.pid,
      )
    try {
      const [old] = await leases()
      await query(first.url, `SELECT pg_terminate_backend(${Number(old)})`)
      // A new lease connection replaces the terminated one.
      await vi.waitFor(
        async () => {
          const now = await leases()
          expect(now).toHaveLength(1)
          expect(now).not.toContain(old)
        },
        { timeout: 10_000, interval: 200 },
      )
      expect(logs).toContain('embedded PostgreSQL lease connection lost; taking the lease again')

      const second = await startEmbeddedPostgres(opts)
      await second.stop()
      expect(await query(first.url, 'SELECT 1 AS up')).toEqual([{ up: 1 }])
    } finally {
      await first.stop()
    }
    expect(await listens(opts.port)).toBe(false)
  }, 60_000)
})

describe('embedded PostgreSQL on a port in use', () => {
  it('says which setting to change', async () => {
    const blocker = createServer()
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve))
    const { port } = blocker.address() as { port: number }
    try {
      await expect(startEmbeddedPostgres({ dataDir: path.join(base, 'blocked', 'postgres'), port })).rejects.toThrow(
        `The embedded PostgreSQL cannot listen on 127.0.0.1:${port}: the port is in use; set EMBEDDED_PG_PORT to a free port.`,
      )
    } finally {
      blocker.close()
    }
  }, 60_000)
})

describe('several local servers on one embedded PostgreSQL', () => {
  let env: Record<string, string>
  const running: ChildServer[] = []
  const start = async () => {
    const server = await startChildServer(env)
    running.push(server)
    return server
  }
  const stop = async (server: ChildServer, signal: NodeJS.Signals = 'SIGTERM') => {
    server.process.kill(signal)
    return server.exited
  }
  const healthy = async (server: ChildServer) => (await fetch(`${server.url}/xrpc/_health`)).status

  beforeAll(async () => {
    env = { EMBEDDED_PG_DATA_DIR: path.join(base, 'shared', 'postgres'), EMBEDDED_PG_PORT: String(await freePort()) }
  })
  afterAll(async () => {
    for (const server of running) if (server.process.exitCode === null) await stop(server, 'SIGKILL')
  })

  it('share a live cluster, never stop it under another server, and the last one out stops it', async () => {
    const first = await start()
    // Start-up says what it does before the slow part.
    expect(first.output()).toMatch(/starting catbird-mls-ds.*initialising a new embedded PostgreSQL.*Server listening/s)
    const second = await start()
    expect(second.output()).toContain('sharing the embedded PostgreSQL already running')

    expect(await stop(second)).toBe(0)
    expect(second.output()).toContain('leaving embedded PostgreSQL running')
    expect(await healthy(first)).toBe(200)
    const alice = await TestUser.create()
    const created = await xrpcClient(first.url).call(alice, NSID.createConvo, {
      input: { groupId: 'ab', cipherSuite: 'MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519' },
    })
    expect(created.status).toBe(200)

    // Whichever leaves first, the others keep their database.
    const third = await start()
    expect(await stop(first)).toBe(0)
    expect(await healthy(third)).toBe(200)
    const convos = await xrpcClient(third.url).call(alice, NSID.getConvos)
    expect(convos.body).toMatchObject({ conversations: [{ groupId: 'ab' }] })

    expect(await stop(third)).toBe(0)
    expect(third.output()).toContain('stopping embedded PostgreSQL: no other process uses it')
    expect(await listens(Number(env.EMBEDDED_PG_PORT))).toBe(false)
  }, 120_000)

  it('adopt a cluster whose server died, and stop it when done', async () => {
    const crashed = await start()
    expect(await stop(crashed, 'SIGKILL')).toBe('SIGKILL')
    // pg_ctl daemonized PostgreSQL: it outlives the crash.
    expect(await listens(Number(env.EMBEDDED_PG_PORT))).toBe(true)

    const next = await start()
    expect(next.output()).toContain('adopting the embedded PostgreSQL left running')
    expect(await healthy(next)).toBe(200)
    expect(await stop(next)).toBe(0)
    expect(await listens(Number(env.EMBEDDED_PG_PORT))).toBe(false)
  }, 120_000)
})
