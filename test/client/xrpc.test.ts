import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import ts from 'typescript'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { FilePendingStore, XrpcClient, XrpcClientError, type PendingOperation } from '../../src/client/index.js'
import { message, NSID, refusingUrl, startTestApp, type TestApp, TestUser } from '../helpers/index.js'
import { projectRoot } from '../../src/paths.js'

let t: TestApp
let alice: TestUser
let xrpc: XrpcClient

beforeAll(async () => {
  t = await startTestApp()
  alice = await TestUser.create()
  xrpc = new XrpcClient({ serviceUrl: `${t.url}/`, token: (nsid) => alice.token(nsid) })
})
afterAll(async () => {
  await t?.close()
})

describe('XrpcClient', () => {
  it('calls queries and procedures typed by the lexicons, binary fields as Uint8Array', async () => {
    const prepared = await t.seed.prepareConvo(alice)
    const convo = await xrpc.procedure(NSID.createConvo, {
      groupId: String(prepared.input.groupId),
      cipherSuite: String(prepared.input.cipherSuite),
    })
    prepared.created(convo)
    const ciphertext = await message(alice, convo.id)
    const sent = await xrpc.procedure(NSID.sendMessage, {
      convoId: convo.id,
      senderDid: alice.did,
      epoch: 0,
      ciphertext,
    })
    const { messages } = await xrpc.query(NSID.getMessages, { convoId: convo.id })
    expect(messages).toHaveLength(1)
    expect(messages[0]).toMatchObject({ id: sent.messageId, sender: alice.did, seq: 1 })
    expect(messages[0]!.ciphertext).toBeInstanceOf(Uint8Array)
    expect(Buffer.from(messages[0]!.ciphertext)).toEqual(Buffer.from(ciphertext))
    // Array parameters go as repeated query parameters.
    const { keyPackages, missing } = await xrpc.query(NSID.getKeyPackages, { dids: [alice.did, 'did:plc:nobody'] })
    expect(keyPackages).toEqual([])
    expect(missing?.sort()).toEqual([alice.did, 'did:plc:nobody'].sort())
  })

  it('surfaces refusals as XrpcClientError with status, name, message and headers', async () => {
    const err = await xrpc.query(NSID.getEpoch, { convoId: 'nope' }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(XrpcClientError)
    const refusal = err as XrpcClientError
    expect(refusal).toMatchObject({
      nsid: NSID.getEpoch,
      status: 404,
      error: 'ConvoNotFound',
      retryable: false,
      permanent: true,
    })
    expect(refusal.message).toEqual(expect.any(String))
    expect(refusal.headers.get('content-type')).toMatch(/application\/json/)

    const unauthenticated = new XrpcClient({ serviceUrl: t.url, token: async () => 'not-a-jwt' })
    await expect(unauthenticated.query(NSID.getConvos, {})).rejects.toMatchObject({ status: 401, permanent: true })
  })

  it('reports a server that cannot be reached as a retryable NetworkError', async () => {
    const offline = new XrpcClient({ serviceUrl: await refusingUrl(), token: (nsid) => alice.token(nsid) })
    const err = await offline.query(NSID.getConvos, {}).catch((e: unknown) => e)
    expect(err).toMatchObject({ status: 0, error: 'NetworkError', retryable: true, permanent: false })
    expect((err as Error).message).toMatch(/ECONNREFUSED/)
  })

  it('loads no server code: of src/ outside src/client it runs only the generated NSIDs and the wire module', async () => {
    const src = path.join(projectRoot, 'src')
    const clientDir = path.join(src, 'client')
    const files = (await readdir(clientDir)).filter((f) => f.endsWith('.ts')).map((f) => path.join(clientDir, f))
    expect(files).toContain(path.join(clientDir, 'index.ts'))
    const packages = new Set<string>()
    const reached = new Set<string>(files)
    for (const file of reached) {
      // What the compiler emits is what runs: type-only imports are gone from it.
      const { outputText } = ts.transpileModule(await readFile(file, 'utf8'), {
        compilerOptions: { module: ts.ModuleKind.ESNext, verbatimModuleSyntax: true },
        fileName: file,
      })
      for (const [, specifier] of outputText.matchAll(/\b(?:from|import)\s*'([^']+)'/g)) {
        if (specifier!.startsWith('.'))
          reached.add(path.resolve(path.dirname(file), specifier!.replace(/\.js$/, '.ts')))
        else packages.add(specifier!)
      }
    }
    const outside = [...reached]
      .filter((file) => !file.startsWith(`${clientDir}${path.sep}`))
      .map((file) => path.relative(src, file))
    expect(outside.sort()).toEqual([path.join('lexicon', 'types', 'index.ts'), path.join('lexicon', 'wire.ts')])
    // The subscription's: DAG-CBOR frames over a WebSocket.
    expect([...packages].sort()).toEqual([
      '@atproto/lex-cbor',
      '@atproto/lexicon',
      'node:crypto',
      'node:fs/promises',
      'node:path',
      'ws',
    ])
  })
})

describe('FilePendingStore', () => {
  it('keeps every change of concurrent writers, in a whole file, with no temporary file left', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'mls-client-store-'))
    try {
      const file = path.join(dir, 'nested', 'pending.json')
      const store = new FilePendingStore(file)
      const op = (i: number): PendingOperation => ({
        id: `op-${i}`,
        nsid: NSID.sendMessage,
        input: { convoId: 'c', ciphertext: { $bytes: 'AAEC' }, idempotencyKey: `op-${i}` },
        createdAt: new Date(i).toISOString(),
      })
      await Promise.all(Array.from({ length: 50 }, (_, i) => store.put(`op-${i}`, op(i))))
      await Promise.all(Array.from({ length: 25 }, (_, i) => store.delete(`op-${i * 2}`)))

      const reopened = new FilePendingStore(file)
      const expected = Array.from({ length: 25 }, (_, i) => op(i * 2 + 1))
      expect(await reopened.list()).toEqual(expected)
      expect(await reopened.get('op-1')).toEqual(op(1))
      expect(await reopened.get('op-0')).toBeUndefined()
      expect(await readdir(path.dirname(file))).toEqual(['pending.json'])
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})
