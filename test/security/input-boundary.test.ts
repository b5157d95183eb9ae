import { randomUUID } from 'node:crypto'
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { handlers } from '../../src/api/index.js'
import {
  bytesJson,
  captureLogs,
  countRows,
  type InputOf,
  NSID,
  randomGroupId,
  rawHttp,
  startTestApp,
  SUITE,
  type TestApp,
  TestUser,
} from '../helpers/index.js'
import { handler } from '../../src/xrpc/types.js'

// Hostile input never becomes a 500: one test per case.
let t: TestApp
let alice: TestUser
let bob: TestUser
let convoId: string

beforeAll(async () => {
  // No event polling: its queries would count as the refused requests' own.
  t = await startTestApp({ config: { EVENT_POLL_INTERVAL_MS: '600000' } })
  alice = await TestUser.create()
  bob = await TestUser.create()
  convoId = (await t.seed.createConvo(alice, [bob])).id
})
afterAll(async () => {
  await t?.close()
})

/**
 * Connections taken from the pool while `fn` runs: a request refused at the
 * boundary takes none. The event hub's reads and notifications of earlier
 * writes (a conversation's creation is an event too) are done first.
 */
async function poolCheckouts(fn: () => Promise<void>): Promise<number> {
  await t.ctx.events.flush()
  await t.ctx.events.caughtUp()
  let checkouts = 0
  const count = () => void checkouts++
  t.database.pool.on('acquire', count)
  try {
    await fn()
  } finally {
    t.database.pool.off('acquire', count)
  }
  return checkouts
}

const messageCount = async () => countRows(t.ctx.db, 'message')

function sendInput(extra: Partial<InputOf<typeof NSID.sendMessage>> = {}) {
  return { convoId, senderDid: alice.did, epoch: 0, ciphertext: bytesJson(new Uint8Array([1, 2, 3])), ...extra }
}

/** Expects a 400 InvalidRequest whose message names `field`, refused before any query. */
async function expectRefusedBeforeAnyQuery(field: string, send: () => Promise<{ status: number; body: unknown }>) {
  const before = await messageCount()
  let res: { status: number; body: unknown } | undefined
  const checkouts = await poolCheckouts(async () => void (res = await send()))
  expect(res!.status, JSON.stringify(res!.body)).toBe(400)
  expect(res!.body).toMatchObject({ error: 'InvalidRequest', message: expect.stringContaining(field) })
  expect(checkouts, 'connections taken from the pool').toBe(0)
  expect(await messageCount()).toBe(before)
  return res!.body as { message: string }
}

describe('strings PostgreSQL cannot store', () => {
  it.each([
    [
      'sendMessage convoId',
      'convoId',
      () => t.call(alice, NSID.sendMessage, { input: sendInput({ convoId: `${convoId}\u0000` }) }),
    ],
    [
      'sendMessage embedType',
      'embedType',
      () => t.call(alice, NSID.sendMessage, { input: sendInput({ embedType: 'link\u0000' }) }),
    ],
    [
      'createConvo metadata.name',
      'metadata.name',
      () =>
        t.call(alice, NSID.createConvo, {
          input: { groupId: randomGroupId(), cipherSuite: SUITE, metadata: { name: 'a\u0000b' } },
        }),
    ],
    [
      'confirmWelcome errorDetails',
      'errorDetails',
      () => t.call(bob, NSID.confirmWelcome, { input: { convoId, success: false, errorDetails: 'bad\u0000' } }),
    ],
    [
      'getMessages ?convoId=<id>%00',
      'convoId',
      () => t.call(alice, NSID.getMessages, { params: { convoId: `${convoId}\u0000` } }),
    ],
  ])('a NUL in %s is refused with 400 naming the field, before any query', async (_case, field, send) => {
    const body = await expectRefusedBeforeAnyQuery(field, send)
    expect(body.message).toMatch(/NUL/)
  })

  it('an unpaired surrogate (not Unicode; pg would store U+FFFD instead) is refused naming the field', async () => {
    const key = randomUUID()
    const createWithName = (name: string) =>
      t.call(alice, NSID.createConvo, {
        input: { groupId: randomGroupId(), cipherSuite: SUITE, metadata: { name }, idempotencyKey: key },
      })
    const body = await expectRefusedBeforeAnyQuery('metadata.name', () => createWithName('chat \ud83d'))
    expect(body.message).toMatch(/surrogate/)
    // A surrogate pair is one valid character.
    expect((await createWithName('chat \ud83d\ude00')).status).toBe(200)
  })
})

describe('integers beyond what the columns and JavaScript hold', () => {
  it.each([
    ['1e300', 'invalid input syntax for type bigint'],
    ['9223372036854775808', 'out of range for type bigint'],
    ['9007199254740993', 'silently rounded to 2^53'],
  ])('epoch %s (was: %s) is refused with 400 naming the field', async (epoch) => {
    const text = JSON.stringify(sendInput({ epoch: 0 })).replace('"epoch":0', `"epoch":${epoch}`)
    const body = await expectRefusedBeforeAnyQuery('epoch', () => t.callRaw(alice, NSID.sendMessage, { input: text }))
    expect(body.message).toContain('9007199254740991')
  })

  it('a query param past the safe range is refused naming the param and the range', async () => {
    const body = await expectRefusedBeforeAnyQuery('fromEpoch', () =>
      t.callRaw(alice, NSID.getCommits, { params: { convoId, fromEpoch: '9223372036854775808' } }),
    )
    expect(body.message).toContain('9007199254740991')
  })
})

describe('JSON shapes', () => {
  it('deep nesting is refused before validation with a clear message, not a stack overflow', async () => {
    const depth = 100_000
    const text = JSON.stringify(sendInput()).replace(`"${convoId}"`, `${'['.repeat(depth)}${']'.repeat(depth)}`)
    const body = await expectRefusedBeforeAnyQuery('nested', () => t.callRaw(alice, NSID.sendMessage, { input: text }))
    expect(body.message).not.toMatch(/call stack/i)
  })

  it('a body with __proto__ is refused, saying so (not "not valid JSON")', async () => {
    const text = JSON.stringify(sendInput()).replace('{', '{"__proto__":{"epoch":1},')
    const body = await expectRefusedBeforeAnyQuery('__proto__', () =>
      t.callRaw(alice, NSID.sendMessage, { input: text }),
    )
    expect(body.message).not.toMatch(/not valid JSON/)
  })

  it.each([
    ['at the top', '{"constructor":{"prototype":{"epoch":1}},', 'constructor.prototype'],
    ['spelled with JSON escapes', '{"\\u0063onstructor":{"prototype":{}},', 'constructor.prototype'],
  ])(
    'a body with constructor.prototype %s is refused naming it, and nothing is stored',
    async (_case, prefix, field) => {
      const text = JSON.stringify(sendInput()).replace('{', prefix)
      const body = await expectRefusedBeforeAnyQuery(field, () => t.callRaw(alice, NSID.sendMessage, { input: text }))
      expect(body.message).toMatch(/not allowed/)
    },
  )

  it('a constructor.prototype nested in a field is refused naming the whole path; no conversation is made', async () => {
    const convos = await countRows(t.ctx.db, 'convo')
    const body = await expectRefusedBeforeAnyQuery('metadata.constructor.prototype', () =>
      t.callRaw(alice, NSID.createConvo, {
        input: JSON.stringify({ groupId: randomGroupId(), cipherSuite: SUITE, metadata: { name: 'chat' } }).replace(
          '"metadata":{',
          '"metadata":{"constructor":{"prototype":{"isAdmin":true}},',
        ),
      }),
    )
    expect(body.message).toMatch(/not allowed/)
    expect(await countRows(t.ctx.db, 'convo')).toBe(convos)
  })

  it('a field named constructor without a prototype in it is only an unknown field', async () => {
    const convos = await countRows(t.ctx.db, 'convo')
    const res = await t.callRaw(alice, NSID.createConvo, {
      input: { groupId: randomGroupId(), cipherSuite: SUITE, metadata: { name: 'chat', constructor: { name: 'x' } } },
    })
    expect(res.status, JSON.stringify(res.body)).toBe(200)
    expect(await countRows(t.ctx.db, 'convo')).toBe(convos + 1)
  })
})

describe('malformed HTTP gets XRPC error bodies', () => {
  const xrpcName = /^[A-Z][A-Za-z]+$/

  it('10,000 repeated dids params: 431 with an XRPC error name', async () => {
    const dids = Array.from({ length: 10_000 }, () => alice.did)
    const res = await t.call(alice, NSID.getKeyPackages, { params: { dids } })
    expect(res.status).toBe(431)
    expect(res.body).toMatchObject({ error: expect.stringMatching(xrpcName), message: expect.any(String) })
    expect(res.body).not.toHaveProperty('statusCode')
  })

  it('a header with control bytes: 400 InvalidRequest', async () => {
    const res = await rawHttp(
      t.url,
      `GET /xrpc/${NSID.getConvos} HTTP/1.1\r\nHost: x\r\nX-Evil: a\u0001b\r\nConnection: close\r\n\r\n`,
    )
    expect(res.status).toBe(400)
    expect(JSON.parse(res.body)).toEqual({ error: 'InvalidRequest', message: expect.any(String) })
  })
})

describe('a data error that still escapes the boundary', () => {
  it('answers 400 InvalidRequest, and is logged at error as a bug', async () => {
    const logs = captureLogs('info')
    // A handler with the bug the boundary exists to prevent: client text cast in SQL.
    const leaky = await startTestApp({
      logger: logs.logger,
      handlers: {
        ...handlers,
        [NSID.getEpoch]: handler(NSID.getEpoch, async ({ params, db }) => {
          await sql`SELECT ${params.convoId}::integer`.execute(db)
          return { convoId: params.convoId, currentEpoch: 0 }
        }),
      },
    })
    try {
      const res = await leaky.call(alice, NSID.getEpoch, { params: { convoId: 'not-a-number' } })
      expect(res.status).toBe(400)
      expect(res.body).toEqual({ error: 'InvalidRequest', message: expect.any(String) })
      expect(logs.lines.filter((l) => l.level === 50)).toEqual([
        expect.objectContaining({
          msg: expect.stringContaining('input boundary'),
          err: expect.objectContaining({ code: '22P02' }),
        }),
      ])
    } finally {
      await leaky.close()
    }
  })
})
