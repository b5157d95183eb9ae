import { readdirSync, readFileSync } from 'node:fs'
import path from 'node:path'
import type { LexiconDoc } from '@atproto/lexicon'
import { describe, expect, expectTypeOf, it } from 'vitest'
import { generate, typesDir } from '../../scripts/gen-lexicon-types.js'
import {
  clientReferenceFixtureDir,
  fixtureText,
  referenceFixtureDir,
  SOURCE_NOTE,
} from '../../scripts/refresh-reference-lexicons.js'
import { handlers, notImplemented, subscriptionHandlers } from '../../src/api/index.js'
import type * as SubscribeConvoEvents from '../../src/lexicon/types/blue.catbird.mls.subscribeConvoEvents.js'
import { NSID, type Subscriptions } from '../../src/lexicon/types/index.js'
import { loadLexiconDocs } from '../../src/xrpc/lexicons.js'

type Schema = Record<string, unknown> & { type?: string }
type Direction = 'input' | 'output'

/**
 * Where the client-era set names an error by kind, this server answers the
 * name all its methods use (null: not declared, as every method answers an
 * authentication failure with AuthenticationRequired, 401).
 */
const CLIENT_ERA_ERROR_NAMES: Record<string, Record<string, string | null>> = {
  getGroupInfo: { Unauthorized: 'NotMember', NotFound: 'ConvoNotFound' },
  processExternalCommit: { Unauthorized: 'NotMember' },
  updateGroupInfo: { Unauthorized: 'NotMember' },
  groupInfoRefresh: { Unauthorized: 'NotMember', ConversationNotFound: 'ConvoNotFound' },
  readdition: { Unauthorized: 'NotMember', NotFound: 'ConvoNotFound' },
  invalidateWelcome: { Unauthorized: 'WelcomeNotFound', NotFound: 'WelcomeNotFound' },
  createInvite: { Unauthorized: 'NotAdmin' },
  listInvites: { Unauthorized: 'NotAdmin' },
  revokeInvite: { Unauthorized: 'NotAdmin' },
  updatePolicy: { Unauthorized: 'NotAdmin' },
  getAdminStats: { NotAuthorized: 'NotAdmin' },
  // Another user's device is not found for the caller.
  deleteDevice: { Unauthorized: 'DeviceNotFound' },
  getExpectedConversations: { Unauthorized: null },
  getPendingDeviceAdditions: { Unauthorized: null },
  getRequestCount: { Unauthorized: null },
}

/**
 * Outputs where this server's lexicon declares less than a client's, because
 * the real client takes more than its own lexicon says (described in ours).
 */
const OUTPUT_FORMATS_LEFT_OUT: Record<string, string> = {
  // The iOS client's DID decoder takes `<user DID>#<deviceId>`, which atproto's did format refuses.
  'blue.catbird.mls.defs#memberView.did': 'did',
}

/** Input bounds ours adds to a client's, that no client of it can reach. */
const INPUT_BOUNDS_ADDED: Record<string, string> = {
  // An MLS epoch is a uint64: a client never sends a negative one.
  'blue.catbird.mls.updateGroupInfo input.epoch': 'minimum',
}

/** Documents of a client-era set that are not wire contract. */
const NOT_ON_THE_WIRE = new Set([
  // The plaintext inside a message's ciphertext: the server never reads it.
  'blue.catbird.mls.message.defs',
])

/**
 * Input fields that one client generation sends and the other's lexicon
 * lacks, and what this server does with each.
 */
const ONE_SIDED_INPUTS: Record<string, string> = {
  'sendMessage.senderDid': 'seed-era: checked to be the caller when given; the client-era clients leave it out',
  'sendMessage.embedType': 'seed-era: stored with the message',
  'sendMessage.embedUri': 'seed-era: stored with the message',
  'sendMessage.msgId': "client-era: the message's id and its name for replays (MsgIdReused when the bytes differ)",
  'sendMessage.paddedSize': "client-era: must equal the ciphertext's length and be a bucket; the padding is read past",
  'sendMessage.delivery': 'client-era: stored as sent (ephemeral is marked, and ordered and kept as any message)',
  'getMessages.sinceMessage': 'seed-era: the resume position',
  'getMessages.sinceSeq': 'client-era: the resume position by seq, answered with lastSeq and gapInfo',
  'createConvo.currentEpoch': "client-era: the creator's epoch, checked against the commit",
  'createConvo.keyPackageHashes': 'client-era: each must be a key package the Welcome names',
  'addMembers.keyPackageHashes': 'client-era: each must be a key package the Welcome names; reserved with them',
}

const docsById = (docs: LexiconDoc[]) => new Map(docs.map((doc) => [doc.id, doc]))
const short = (nsid: string) => nsid.split('.').at(-1) as string

/** Upstream wrote a few array bounds with JSON Schema's names; lexicons mean minLength/maxLength. */
function bounds(schema: Schema): Schema {
  const { minItems, maxItems, ...rest } = schema
  return {
    ...rest,
    ...(minItems !== undefined && rest.minLength === undefined ? { minLength: minItems } : {}),
    ...(maxItems !== undefined && rest.maxLength === undefined ? { maxLength: maxItems } : {}),
  }
}

/**
 * Checks that ours serves a client generated from `theirs`: an input ours
 * takes whatever theirs lets a client send (the same type, bounds no
 * narrower, no format or enum theirs lacks, required only what theirs
 * requires); an output ours gives is one theirs decodes (bounds no wider, the
 * formats and enums theirs declares, every field theirs requires, required).
 * Returns what breaks, by path.
 */
function compatibility(theirDocs: Map<string, LexiconDoc>, ourDocs: Map<string, LexiconDoc>) {
  const problems: string[] = []
  const reached = new Set<string>()

  const resolve = (docs: Map<string, LexiconDoc>, ref: string, base: string): [string, Schema | undefined] => {
    const [nsid, name = 'main'] = ref.startsWith('#') ? [base, ref.slice(1)] : ref.split('#')
    const full = `${nsid}#${name}`
    return [full, (docs.get(nsid as string)?.defs as Record<string, Schema> | undefined)?.[name]]
  }

  const bound = (at: string, dir: Direction, key: string, theirs: unknown, ours: unknown, upper: boolean) => {
    const t = theirs as number | undefined
    const o = ours as number | undefined
    // An input's bound may be looser than theirs (or absent); an output's must be at least as tight.
    const looser = (a: number, b: number) => (upper ? a >= b : a <= b)
    const added = t === undefined && INPUT_BOUNDS_ADDED[at] === key
    if (
      dir === 'input'
        ? o !== undefined && (t === undefined ? !added : !looser(o, t))
        : t !== undefined && (o === undefined || !looser(t, o))
    ) {
      problems.push(`${at}: ${key} ${String(o)} where the client's is ${String(t)} (${dir})`)
    }
  }

  const check = (
    at: string,
    dir: Direction,
    theirRaw: Schema,
    our: Schema | undefined,
    theirBase: string,
    ourBase: string,
  ): void => {
    const fail = (problem: string) => void problems.push(`${at}: ${problem}`)
    if (!our) return fail('missing')
    const their = bounds(theirRaw)
    if (their.type === 'ref') {
      const [name, def] = resolve(theirDocs, their.ref as string, theirBase)
      if (our.type !== 'ref') return fail(`not a ref to ${name}`)
      const [ourName, ourDef] = resolve(ourDocs, our.ref as string, ourBase)
      if (ourName !== name) return fail(`refers to ${ourName}, not ${name}`)
      if (reached.has(`${dir} ${name}`)) return
      reached.add(`${dir} ${name}`)
      return check(name, dir, def as Schema, ourDef, name.split('#')[0] as string, ourName.split('#')[0] as string)
    }
    if (their.type !== our.type) return fail(`${String(our.type)} where the client's is ${String(their.type)}`)
    for (const key of ['maxLength', 'maxGraphemes', 'maximum']) bound(at, dir, key, their[key], our[key], true)
    for (const key of ['minLength', 'minGraphemes', 'minimum']) bound(at, dir, key, their[key], our[key], false)
    if (their.format !== our.format) {
      const leftOut = OUTPUT_FORMATS_LEFT_OUT[at] === their.format && our.format === undefined
      const fine = dir === 'input' ? our.format === undefined : their.format === undefined || leftOut
      if (!fine) fail(`format ${String(our.format)} where the client's is ${String(their.format)} (${dir})`)
    }
    if (their.const !== undefined && our.const !== their.const) fail(`const ${String(our.const)}`)
    // An input's enum takes every value theirs allows (or there is none); an output's gives only those.
    const [theirEnum, ourEnum] = [their.enum as unknown[] | undefined, our.enum as unknown[] | undefined]
    const within = (values: unknown[] | undefined, allowed: unknown[] | undefined) =>
      allowed === undefined || (values !== undefined && values.every((v) => allowed.includes(v)))
    if (dir === 'input' ? !within(theirEnum, ourEnum) : !within(ourEnum, theirEnum)) {
      fail(`enum ${JSON.stringify(ourEnum)} where the client's is ${JSON.stringify(theirEnum)} (${dir})`)
    }
    if (their.type === 'array') {
      check(`${at}[]`, dir, their.items as Schema, our.items as Schema, theirBase, ourBase)
    } else if (their.type === 'union') {
      const full = (refs: unknown, base: string) => (refs as string[]).map((r) => resolve(ourDocs, r, base)[0])
      const ourRefs = full(our.refs, ourBase)
      for (const ref of their.refs as string[]) {
        const [name] = resolve(theirDocs, ref, theirBase)
        if (!ourRefs.includes(name)) fail(`union without ${name}`)
        else check(`${at}|`, dir, { type: 'ref', ref: name }, { type: 'ref', ref: name }, theirBase, ourBase)
      }
    } else if (their.type === 'object' || their.type === 'params') {
      const theirProps = (their.properties ?? {}) as Record<string, Schema>
      const ourProps = (our.properties ?? {}) as Record<string, Schema>
      const theirRequired = (their.required ?? []) as string[]
      const ourRequired = (our.required ?? []) as string[]
      for (const [name, prop] of Object.entries(theirProps)) {
        check(`${at}.${name}`, dir, prop, ourProps[name], theirBase, ourBase)
      }
      if (dir === 'input') {
        for (const name of ourRequired) {
          if (!theirRequired.includes(name)) fail(`${name} required, where the client may leave it out`)
        }
      } else {
        for (const name of theirRequired) {
          if (!ourRequired.includes(name)) fail(`${name} optional, where the client requires it`)
        }
      }
    }
  }

  for (const [id, their] of theirDocs) {
    if (NOT_ON_THE_WIRE.has(id)) continue
    const ours = ourDocs.get(id)
    if (!ours) {
      problems.push(`${id}: missing`)
      continue
    }
    const t = their.defs.main as Schema | undefined
    const o = ours.defs.main as Schema | undefined
    if (t) {
      if (t.type !== o?.type) problems.push(`${id}: a ${String(o?.type)} where the client's is a ${String(t.type)}`)
      const body = (d: Schema | undefined, key: 'input' | 'output') =>
        d?.[key] as { encoding?: string; schema?: Schema } | undefined
      if (t.parameters) check(`${id}?`, 'input', t.parameters as Schema, o?.parameters as Schema | undefined, id, id)
      for (const [key, dir] of [
        ['input', 'input'],
        ['output', 'output'],
      ] as const) {
        const [theirBody, ourBody] = [body(t, key), body(o, key)]
        if (!theirBody) continue
        if (theirBody.encoding !== ourBody?.encoding)
          problems.push(`${id} ${key}: encoding ${String(ourBody?.encoding)}`)
        if (theirBody.schema) check(`${id} ${key}`, dir, theirBody.schema, ourBody?.schema, id, id)
      }
      const message = (d: Schema | undefined) => (d?.message as { schema?: Schema } | undefined)?.schema
      if (message(t)) check(`${id} message`, 'output', message(t) as Schema, message(o), id, id)
      const renamed = CLIENT_ERA_ERROR_NAMES[short(id)] ?? {}
      const ourErrors = ((o?.errors ?? []) as Array<{ name: string }>).map((e) => e.name)
      for (const { name } of (t.errors ?? []) as Array<{ name: string }>) {
        const answered = name in renamed ? renamed[name] : name
        if (answered && !ourErrors.includes(answered)) problems.push(`${id}: no error ${answered} (theirs: ${name})`)
      }
    }
    // Every other definition is ours too; those no method reached are what the server sends.
    for (const [name, def] of Object.entries(their.defs)) {
      const full = `${id}#${name}`
      if (name === 'main' || reached.has(`input ${full}`) || reached.has(`output ${full}`)) continue
      check(full, 'output', def as Schema, (ours.defs as Record<string, Schema>)[name], id, id)
    }
  }
  return problems
}

/** Input fields of the methods both sets have that only one of them declares. */
function oneSidedInputs(a: Map<string, LexiconDoc>, b: Map<string, LexiconDoc>): string[] {
  const fields = (doc: LexiconDoc | undefined) => {
    const main = doc?.defs.main as { parameters?: Schema; input?: { schema?: Schema } } | undefined
    return Object.keys({ ...(main?.parameters?.properties ?? {}), ...(main?.input?.schema?.properties ?? {}) })
  }
  const found: string[] = []
  for (const [id, doc] of a) {
    if (!b.has(id)) continue
    const [fa, fb] = [fields(doc), fields(b.get(id))]
    for (const f of [...fa.filter((x) => !fb.includes(x)), ...fb.filter((x) => !fa.includes(x))]) {
      found.push(`${short(id)}.${f}`)
    }
  }
  return found.sort()
}

describe('lexicons', () => {
  const ours = docsById(loadLexiconDocs())
  const seedEra = docsById(loadLexiconDocs(referenceFixtureDir))
  const clientEra = docsById(loadLexiconDocs(clientReferenceFixtureDir))

  it('serve a client generated from the seed-era lexicons', () => {
    expect(seedEra.size).toBe(14)
    expect(compatibility(seedEra, ours)).toEqual([])
  })

  it('serve a client generated from the client-era lexicons', () => {
    expect(clientEra.size).toBe(66)
    expect(compatibility(clientEra, ours)).toEqual([])
  })

  it('catch what a client would not get: a required input, an output narrowed, a field or error missing', () => {
    const broken = structuredClone(ours.get(NSID.sendMessage)) as LexiconDoc
    const main = broken.defs.main as unknown as {
      input: { schema: Schema & { required: string[]; properties: Record<string, Schema> } }
      output: { schema: Schema & { required: string[] } }
      errors: Array<{ name: string }>
    }
    main.input.schema.required.push('msgId')
    main.input.schema.properties.epoch = { type: 'integer', minimum: 1 }
    main.output.schema.required = ['messageId', 'receivedAt', 'seq']
    main.errors = main.errors.filter((e) => e.name !== 'EpochMismatch')
    const defs = structuredClone(ours.get('blue.catbird.mls.defs')) as LexiconDoc
    const member = (defs.defs as unknown as Record<string, { properties: Record<string, Schema> }>).memberView
    delete member?.properties.isAdmin
    const problems = [
      ...compatibility(seedEra, new Map([...ours, [NSID.sendMessage, broken]])),
      ...compatibility(clientEra, new Map([...ours, [NSID.sendMessage, broken], [defs.id, defs]])),
    ]
    expect(problems).toEqual(
      expect.arrayContaining([
        `${NSID.sendMessage} input: msgId required, where the client may leave it out`,
        `${NSID.sendMessage} input.epoch: minimum 1 where the client's is 0 (input)`,
        `${NSID.sendMessage} output: epoch optional, where the client requires it`,
        `${NSID.sendMessage}: no error EpochMismatch (theirs: EpochMismatch)`,
        'blue.catbird.mls.defs#memberView.isAdmin: missing',
      ]),
    )
  })

  it('say what the server does with each input field only one client generation sends', () => {
    expect(oneSidedInputs(seedEra, clientEra)).toEqual(Object.keys(ONE_SIDED_INPUTS).sort())
  })

  it('are checked against fixtures of the contract alone, with their origin noted', () => {
    // As `npm run fixtures:lexicons` writes it: no prose, but fields named
    // `description` (conversation metadata) are contract and stay.
    for (const dir of [referenceFixtureDir, clientReferenceFixtureDir]) {
      for (const file of readdirSync(dir).filter((f) => f.endsWith('.json'))) {
        const text = readFileSync(path.join(dir, file), 'utf8')
        expect(text, file).toBe(fixtureText(JSON.parse(text)))
      }
      expect(readFileSync(path.join(dir, SOURCE_NOTE), 'utf8')).toMatch(/commit [0-9a-f]{40}/)
    }
    const defs = seedEra.get('blue.catbird.mls.defs')?.defs as Record<string, { properties?: object }>
    expect(Object.keys(defs.convoMetadata?.properties ?? {})).toEqual(['name', 'description'])
  })

  it('have a handler for every method, or list it as not implemented yet (never both)', () => {
    const handled = Object.keys(handlers)
    const listed: string[] = [...notImplemented]
    expect([...handled, ...listed].sort()).toEqual(Object.values(NSID).sort())
    expect(handled.filter((nsid) => listed.includes(nsid))).toEqual([])
    // A subscription is not an XRPC route but a WebSocket, with a handler map of its own.
    const subscription: keyof Subscriptions = 'blue.catbird.mls.subscribeConvoEvents'
    expect(Object.values(NSID)).not.toContain(subscription)
    expect(ours.get(subscription)?.defs.main?.type).toBe('subscription')
    expect(Object.keys(subscriptionHandlers)).toEqual([subscription])
  })

  it('type a subscription by its params and its message union', () => {
    type Typed = Subscriptions['blue.catbird.mls.subscribeConvoEvents']
    expectTypeOf<Typed['params']>().toEqualTypeOf<SubscribeConvoEvents.Params>()
    expectTypeOf<Typed['params']['ticket']>().toEqualTypeOf<string | undefined>()
    expectTypeOf<Typed['message']>().toEqualTypeOf<SubscribeConvoEvents.EventWrapper['event']>()
    expectTypeOf<Extract<Typed['message'], { $type: `${string}#newDeviceEvent` }>>().toMatchTypeOf<{
      pendingAdditionId: string
    }>()
    const generated = generate(loadLexiconDocs()).get('blue.catbird.mls.subscribeConvoEvents.ts')
    expect(generated).toContain('export type Message = (MessageEvent & {')
  })

  it('match the generated TypeScript types (run `npm run gen:types` after editing lexicons/)', () => {
    for (const [file, text] of generate(loadLexiconDocs())) {
      expect(readFileSync(path.join(typesDir, file), 'utf8'), file).toBe(text)
    }
  })
})
