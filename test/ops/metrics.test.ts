import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { message, NSID, startTestApp, type TestApp, TestUser } from '../helpers/index.js'

const TOKEN = 'metrics-token-0123456789'
let t: TestApp
let open: TestApp

beforeAll(async () => {
  t = await startTestApp({ config: { METRICS_TOKEN: TOKEN } })
  open = await startTestApp({ testDb: t.testDb })
})
afterAll(async () => {
  await open?.close()
  await t?.close()
})

/** One sample of a metric, from Prometheus text. */
function sample(text: string, name: string, labels = ''): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels ? `{${labels}}` : ''} `))
  return line === undefined ? undefined : Number(line.split(' ').pop())
}

const scrape = async () => {
  const res = await fetch(`${t.url}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } })
  expect(res.status).toBe(200)
  expect(res.headers.get('content-type')).toContain('text/plain')
  return res.text()
}

describe('/metrics', () => {
  it('counts requests, idempotency outcomes, Welcome events and key packages left', async () => {
    const alice = await TestUser.create()
    const bob = await TestUser.create()
    const carol = await TestUser.create()
    const convo = await t.seed.createConvo(alice, [bob, carol])
    const key = randomUUID()
    const a = await message(alice, convo.id)
    await t.seed.sendMessage(alice, convo.id, { idempotencyKey: key, ciphertext: a })
    await t.seed.sendMessage(alice, convo.id, { idempotencyKey: key, ciphertext: a })
    await t.seed.sendMessage(alice, convo.id, { idempotencyKey: key, ciphertext: await message(alice, convo.id) })
    // A message of an epoch the group has left (carol's removal moved it on): 409.
    const stale = await message(alice, convo.id)
    await t.seed.removeMember(alice, convo.id, carol)
    await t.seed.sendMessage(alice, convo.id, { ciphertext: stale })
    await t.call(bob, NSID.getWelcome, { params: { convoId: convo.id } })
    await t.call(bob, NSID.getWelcome, { params: { convoId: convo.id } })
    await t.call(bob, NSID.confirmWelcome, { input: { convoId: convo.id, success: true } })
    await t.call(bob, NSID.getWelcome, { params: { convoId: convo.id } })
    for (let i = 0; i < 6; i++) await t.seed.publishKeyPackage(alice)
    await t.seed.publishKeyPackage(bob)

    const text = await scrape()
    const send = `nsid="${NSID.sendMessage}"`
    expect(sample(text, 'xrpc_requests_total', `${send},status="200"`)).toBe(2)
    expect(sample(text, 'xrpc_requests_total', `${send},status="422"`)).toBe(1)
    expect(sample(text, 'xrpc_requests_total', `${send},status="409"`)).toBe(1)
    expect(sample(text, 'xrpc_request_duration_seconds_count', `${send},status="200"`)).toBe(2)
    expect(sample(text, 'idempotency_requests_total', 'outcome="miss"')).toBe(1)
    expect(sample(text, 'idempotency_requests_total', 'outcome="hit"')).toBe(1)
    expect(sample(text, 'idempotency_requests_total', 'outcome="mismatch"')).toBe(1)
    expect(sample(text, 'idempotency_hit_ratio')).toBe(0.5)
    expect(sample(text, 'welcome_events_total', 'event="fetched"')).toBe(1)
    expect(sample(text, 'welcome_events_total', 'event="refetched_in_grace"')).toBe(1)
    expect(sample(text, 'welcome_events_total', 'event="confirmed_success"')).toBe(1)
    expect(sample(text, 'welcome_events_total', 'event="already_consumed"')).toBe(1)
    expect(sample(text, 'key_packages_available_callers', 'available="5-19"')).toBe(1)
    expect(sample(text, 'key_packages_available_callers', 'available="1-4"')).toBe(1)
    expect(sample(text, 'db_pool_connections', 'state="total"')).toBeGreaterThan(0)
    expect(text).toContain('idempotency_cleanup_deleted_total')
  })

  it('requires the token when one is configured', async () => {
    expect((await fetch(`${t.url}/metrics`)).status).toBe(401)
    const wrong = await fetch(`${t.url}/metrics`, { headers: { authorization: 'Bearer nope-nope-nope-nope' } })
    expect(wrong.status).toBe(401)
    expect(await wrong.json()).toMatchObject({ error: 'AuthMissing' })
  })

  it('without a token, answers loopback clients only', async () => {
    expect((await fetch(`${open.url}/metrics`)).status).toBe(200)
    const remote = await open.app.inject({ method: 'GET', url: '/metrics', remoteAddress: '203.0.113.9' })
    expect(remote.statusCode).toBe(403)
  })
})
