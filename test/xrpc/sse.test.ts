import { once } from 'node:events'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import type { FastifyBaseLogger, FastifyReply } from 'fastify'
import { pino } from 'pino'
import { describe, expect, it } from 'vitest'
import { SseStream } from '../../src/xrpc/sse.js'

describe('SseStream', () => {
  it('is closed at once when its client went away while the stream was being opened', async () => {
    const opened = new Promise<SseStream>((resolve) => {
      const server = http.createServer(async (_req, res) => {
        // The client leaves before the handler gets to open the stream (as while it catches up).
        if (!res.destroyed) await once(res, 'close')
        const reply = { raw: res, hijack() {} } as unknown as FastifyReply
        resolve(
          new SseStream(reply, {
            keepAliveMs: 60_000,
            maxBufferBytes: 1024,
            log: pino({ level: 'silent' }) as FastifyBaseLogger,
          }),
        )
        server.close()
      })
      server.listen(0, '127.0.0.1', () => {
        const request = http.get({ port: (server.address() as AddressInfo).port, host: '127.0.0.1' })
        request.on('error', () => {})
        setTimeout(() => request.destroy(), 50)
      })
    })
    const stream = await opened
    // Closed: the outbox iterating it ends and unsubscribes, and no keep-alive timer is left behind.
    expect(stream.signal.aborted).toBe(true)
  })
})
