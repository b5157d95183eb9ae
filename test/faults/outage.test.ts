import { chmod, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startEmbeddedPostgres, type EmbeddedPostgres } from '../../src/db/embedded.js'
import { createDatabase } from '../../src/db/index.js'
import { migrateToLatest } from '../../src/db/migrator.js'
import { startTestApp, type TestApp, TestUser } from '../helpers/index.js'

// A cluster of this file's own, so it can be stopped without touching other test files.
let dir: string
let port: number
let cluster: EmbeddedPostgres
let t: TestApp

const startCluster = () => startEmbeddedPostgres({ dataDir: path.join(dir, 'data'), port, settings: { fsync: 'off' } })

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'catbird-outage-'))
  await chmod(dir, 0o755)
  port = 40_000 + Math.floor(Math.random() * 10_000)
  cluster = await startCluster()
  const database = createDatabase({ url: cluster.url, poolSize: 4 })
  await migrateToLatest(database.db)
  await database.close()
  t = await startTestApp({ testDb: { url: cluster.url, directUrl: cluster.url, drop: async () => {} } })
})
afterAll(async () => {
  await t?.close()
  await cluster?.stop()
  await rm(dir, { recursive: true, force: true })
})

describe('database outage', () => {
  it('answers 503 XRPC errors while the database is down, reports unhealthy, and recovers by itself', async () => {
    const alice = await TestUser.create()
    const convo = await t.seed.createConvo(alice)
    expect((await t.seed.sendMessage(alice, convo.id)).status).toBe(200)

    // Load running while the database goes away, and after it is back.
    let stop = false
    const statuses: number[] = []
    const load = Promise.all(
      Array.from({ length: 4 }, async () => {
        while (!stop) statuses.push((await t.seed.sendMessage(alice, convo.id)).status)
      }),
    )
    const answered = (status: number, from = 0) => statuses.slice(from).filter((s) => s === status).length
    await expect.poll(() => answered(200), { timeout: 20_000 }).toBeGreaterThanOrEqual(8)
    await cluster.stop()
    const down = statuses.length
    await expect.poll(() => answered(503, down), { timeout: 20_000 }).toBeGreaterThanOrEqual(8)

    const during = await t.seed.sendMessage(alice, convo.id)
    expect(during.status).toBe(503)
    expect(during.body).toMatchObject({ error: 'ServiceUnavailable', message: expect.any(String) })
    const health = await fetch(`${t.url}/xrpc/_health`)
    expect(health.status).toBe(503)

    cluster = await startCluster()
    const up = statuses.length
    await expect.poll(() => answered(200, up), { timeout: 20_000 }).toBeGreaterThanOrEqual(8)
    stop = true
    await load
    // Nothing but successes and clean 503s: no 500, no hang.
    expect(new Set(statuses.filter((s) => s !== 200 && s !== 503))).toEqual(new Set())

    expect((await fetch(`${t.url}/xrpc/_health`)).status).toBe(200)
    expect((await t.seed.sendMessage(alice, convo.id)).status).toBe(200)
  }, 60_000)

  it('answers 503 when its connections are terminated, then serves again', async () => {
    const alice = await TestUser.create()
    const convo = await t.seed.createConvo(alice)
    const admin = new pg.Client(cluster.url)
    const watcher = new pg.Client(cluster.url)
    await Promise.all([admin.connect(), watcher.connect()])
    try {
      // Hold the conversation's row lock, so every send is in flight on its
      // own connection, waiting inside its statement, when the connections go.
      await admin.query('BEGIN')
      await admin.query('SELECT 1 FROM convo WHERE id = $1 FOR UPDATE', [convo.id])
      const sends = Array.from({ length: 20 }, () => t.seed.sendMessage(alice, convo.id))
      // Outside the transaction: inside one, pg_stat_activity is a snapshot.
      const waiting = async () => {
        const { rows } = await watcher.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock'`,
        )
        return rows[0]?.n
      }
      // The pool has 20 connections: all sends reach the lock.
      await expect.poll(waiting, { timeout: 20_000, interval: 100 }).toBe(20)
      await watcher.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE wait_event_type = 'Lock'`)
      const answers = await Promise.all(sends)
      expect(answers.map((r) => r.status)).toEqual(Array.from({ length: 20 }, () => 503))
      expect(answers[0]?.body).toMatchObject({ error: 'ServiceUnavailable', message: expect.any(String) })
      await admin.query('ROLLBACK')
    } finally {
      await Promise.all([admin.end(), watcher.end()])
    }
    expect((await t.seed.sendMessage(alice, convo.id)).status).toBe(200)
  })
})
