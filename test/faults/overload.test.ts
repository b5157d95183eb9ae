import { connect } from 'node:net'
import { describe, expect, it } from 'vitest'
import { NSID, TestUser } from '../helpers/index.js'
import { testAppForFile } from '../helpers/per-file.js'

const t = testAppForFile({ config: { RATE_LIMIT_PER_MINUTE: '3', REQUEST_TIMEOUT_MS: '300' } })

describe('overload and slow clients', () => {
  it('answers 429 RateLimitExceeded per caller past the configured rate', async () => {
    const alice = await TestUser.create()
    const bob = await TestUser.create()
    const statuses = []
    for (let i = 0; i < 4; i++) statuses.push((await t.call(alice, NSID.getConvos)).status)
    expect(statuses).toEqual([200, 200, 200, 429])
    const limited = await t.call(alice, NSID.getConvos)
    expect(limited.body).toMatchObject({ error: 'RateLimitExceeded', message: expect.any(String) })
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(0)
    // Another caller has a budget of its own; health checks are not limited.
    expect((await t.call(bob, NSID.getConvos)).status).toBe(200)
    for (let i = 0; i < 5; i++) expect((await fetch(`${t.url}/xrpc/_health`)).status).toBe(200)
  })

  it('closes a connection that sends its request too slowly', async () => {
    const { port } = new URL(t.url)
    const token = await (await TestUser.create()).token(NSID.sendMessage)
    const socket = connect(Number(port), '127.0.0.1')
    const received: Buffer[] = []
    socket.on('data', (chunk) => received.push(chunk))
    socket.write(
      `POST /xrpc/${NSID.sendMessage} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"convo`,
    )
    const closedWithin = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), 5_000)
      socket.on('close', () => {
        clearTimeout(timer)
        resolve(true)
      })
    })
    expect(closedWithin).toBe(true)
    const answer = Buffer.concat(received).toString()
    expect(answer).toMatch(/^HTTP\/1\.1 408/)
    expect(JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4))).toEqual({
      error: 'RequestTimeout',
      message: expect.any(String),
    })
  })
})
