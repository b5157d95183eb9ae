import { randomBytes } from 'node:crypto'
import { jsonToLex } from '@atproto/lexicon'
import fc from 'fast-check'
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { xrpcMethods, type XrpcMethod } from '../../src/xrpc/lexicons.js'
import { startTestApp, type TestApp } from '../helpers/app.js'
import { queryString } from '../helpers/xrpc.js'
import { createConvo, publishKeyPackage, sendMessage } from '../helpers/mls.js'
import { TestUser } from '../helpers/users.js'

let t: TestApp
let alice: TestUser
let bob: TestUser
let convoId: string
let messageId: string

beforeAll(async () => {
  t = await startTestApp({ config: { BODY_LIMIT_BYTES: '65536' } })
  alice = await TestUser.create()
  bob = await TestUser.create()
  const convo = await createConvo(t, alice, [bob])
  convoId = convo.id
  messageId = (await sendMessage(t, alice, convoId)).body.messageId
  await publishKeyPackage(t, bob)
})
afterAll(async () => {
  await t?.close()
})

async function tableCounts(): Promise<string> {
  const { rows } = await sql<{ counts: string }>`SELECT concat_ws(',',
    (SELECT count(*) FROM convo), (SELECT count(*) FROM member), (SELECT count(*) FILTER (WHERE left_at IS NULL) FROM member),
    (SELECT count(*) FROM message), (SELECT count(*) FROM commit), (SELECT count(*) FILTER (WHERE consumed_at IS NULL) FROM key_package),
    (SELECT count(*) FROM key_package), (SELECT string_agg(state, '' ORDER BY convo_id, recipient_did) FROM welcome_delivery),
    (SELECT count(*) FROM idempotency_key), (SELECT max(epoch) FROM convo)) AS counts`.execute(t.ctx.db)
  return rows[0]!.counts
}

/** Values of every JSON shape, biased towards the ones the server has to tell apart. */
const jsonValue = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    fc.constantFrom(null, true, false, 0, -1, 1.5, 2 ** 53, '', 'did:plc:abc', 'not-a-did', "'; DROP TABLE convo;--"),
    fc.string(),
    fc.integer(),
    fc.double(),
    fc.constant({ $bytes: randomBytes(12).toString('base64') }),
    fc.constant({ $bytes: '%%%' }),
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(fc.string({ maxLength: 8 }), tie('value'), { maxKeys: 4 }),
  ),
})).value

/** A field name the method knows, or something else entirely. */
function fieldsOf(method: XrpcMethod): string[] {
  const def = method.def
  const params = Object.keys(def.parameters?.properties ?? {})
  const schema = def.type === 'procedure' ? def.input?.schema : undefined
  const input = schema?.type === 'object' ? Object.keys(schema.properties ?? {}) : []
  return [...params, ...input]
}

const methods = () => xrpcMethods(t.ctx.lexicons).filter((m) => m.nsid !== 'blue.catbird.mls.streamConvoEvents')

const request = fc.record({
  methodIndex: fc.nat(),
  fields: fc.array(
    fc.tuple(fc.oneof(fc.constant('known'), fc.string({ maxLength: 10 })), fc.nat(), jsonValue, fc.boolean()),
    { maxLength: 6 },
  ),
  body: fc.oneof(
    { weight: 4, arbitrary: fc.constant('fields') },
    fc.constant('raw-garbage'),
    fc.constant('array'),
    fc.constant('none'),
  ),
  contentType: fc.constantFrom('application/json', 'application/json', 'text/plain', 'application/x-www-form-urlencoded'),
  idempotencyHeader: fc.option(fc.string({ maxLength: 300 }), { nil: undefined }),
  auth: fc.constantFrom('valid', 'valid', 'valid', 'garbage', 'none', 'other-method'),
})

describe('hostile input', () => {
  it('every endpoint answers random and malformed requests with a 4xx XRPC error or a valid output, never a 500, and refused requests change nothing', async () => {
    await fc.assert(
      fc.asyncProperty(request, async (r) => {
        const all = methods()
        const method = all[r.methodIndex % all.length]!
        const known = fieldsOf(method)
        const values: Record<string, unknown> = {}
        for (const [name, pick, value, useRealId] of r.fields) {
          const field = name === 'known' && known.length ? known[pick % known.length]! : name
          values[field] = useRealId && /convoId/.test(field) ? convoId : useRealId && field === 'sinceMessage' ? messageId : value
        }
        const headers: Record<string, string> = {}
        const user = r.methodIndex % 2 ? alice : bob
        if (r.auth !== 'none') {
          headers.authorization =
            r.auth === 'garbage' ? 'Bearer x.y.z' : `Bearer ${await user.token(r.auth === 'valid' ? method.nsid : 'blue.catbird.mls.getEpoch')}`
        }
        if (r.idempotencyHeader !== undefined) headers['idempotency-key'] = r.idempotencyHeader.replace(/[\r\n\0]/g, '')
        let url = `${t.url}/xrpc/${method.nsid}`
        let body: string | undefined
        if (method.def.type === 'query') {
          const params = Object.fromEntries(
            Object.entries(values).map(([k, v]) => [k, typeof v === 'object' ? JSON.stringify(v) : String(v)]),
          )
          url += queryString(params)
        } else if (r.body !== 'none') {
          headers['content-type'] = r.contentType
          body = r.body === 'fields' ? JSON.stringify(values) : r.body === 'array' ? JSON.stringify([values]) : '{"convoId": [1,'
        }

        const before = await tableCounts()
        const res = await fetch(url, { method: method.def.type === 'query' ? 'GET' : 'POST', headers, body })
        const text = await res.text()
        const context = `${method.nsid} ${res.status} ${text.slice(0, 300)} <- ${body ?? url}`
        expect(res.status, context).toBeLessThan(500)
        const json = JSON.parse(text) as Record<string, unknown>
        if (res.status >= 400) {
          expect(typeof json.error, context).toBe('string')
          expect(typeof json.message, context).toBe('string')
          expect(await tableCounts(), context).toBe(before)
        } else {
          expect(() => t.ctx.lexicons.assertValidXrpcOutput(method.nsid, jsonToLex(json as never)), context).not.toThrow()
        }
      }),
      { numRuns: 400, seed: Number(process.env.FUZZ_SEED ?? Date.now() % 2 ** 31), endOnFailure: true },
    )
  }, 120_000)
})
