import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  baseEnv,
  type ChildServer,
  copyProject,
  createTestDatabase,
  encodeBase64,
  encrypt,
  hex,
  newGroup,
  NSID,
  type ProjectCopy,
  SERVICE_DID,
  spawnServer,
  SUITE,
  type TestDatabase,
  TestUser,
} from '../helpers/index.js'
import { projectRoot } from '../../src/paths.js'

const run = promisify(execFile)
let copy: ProjectCopy
let consumer: string
let testDb: TestDatabase
let packed: string[]
let server: ChildServer | undefined

/** The package as someone installs it: packed from a checkout (building it), then installed into a project of their own. */
beforeAll(async () => {
  ;[copy, testDb, consumer] = await Promise.all([
    copyProject(),
    createTestDatabase(),
    mkdtemp(path.join(tmpdir(), 'catbird-consumer-')),
  ])
  const { stdout } = await run('npm', ['pack', '--json', '--pack-destination', consumer], {
    cwd: copy.dir,
    env: baseEnv(),
  })
  const [tarball] = JSON.parse(stdout.slice(stdout.indexOf('['))) as Array<{
    filename: string
    files: Array<{ path: string }>
  }>
  if (!tarball) throw new Error(`npm pack gave no tarball:\n${stdout}`)
  packed = tarball.files.map((file) => file.path)
  await writeFile(
    path.join(consumer, 'package.json'),
    JSON.stringify({ name: 'consumer', private: true, type: 'module' }),
  )
  // Without the optional PostgreSQL binaries: an SDK user has no use for them.
  await run(
    'npm',
    [
      'install',
      `./${tarball.filename}`,
      '--omit=optional',
      '--ignore-scripts',
      '--prefer-offline',
      '--no-audit',
      '--no-fund',
    ],
    { cwd: consumer, env: baseEnv() },
  )
}, 240_000)
afterAll(async () => {
  server?.process.kill('SIGKILL')
  await copy?.remove()
  await testDb?.drop()
  if (consumer) await rm(consumer, { recursive: true, force: true })
})

const installed = () => path.join(consumer, 'node_modules', 'catbird-mls-ds')

describe('the npm package', () => {
  it('holds the compiled SDK and server with their types, lexicons, licence and guides, and no sources', () => {
    for (const file of [
      'package.json',
      'LICENSE',
      'README.md',
      // The SDK's guide, which README.md links to.
      'src/client/README.md',
      'dist/client/index.js',
      'dist/client/index.d.ts',
      'dist/lexicon/types/blue.catbird.mls.defs.d.ts',
      'dist/main.js',
      'dist/db/migrate-cli.js',
      'dist/admin-cli.js',
      'dist/db/migrations/index.js',
      'lexicons/blue.catbird.mls.sendMessage.json',
    ]) {
      expect(packed).toContain(file)
    }
    expect(
      packed.filter(
        (file) => !/^(dist\/|lexicons\/|package\.json$|LICENSE$|README\.md$|src\/client\/README\.md$)/.test(file),
      ),
    ).toEqual([])
    expect(packed.filter((file) => file.endsWith('.map') || file.endsWith('.tsbuildinfo'))).toEqual([])
  })

  it('runs the compiled server, migrate and admin commands with production dependencies only (as the image does)', async () => {
    const env = { ...baseEnv(), DATABASE_URL: testDb.url }
    const status = await run('npm', ['run', 'migrate', '--', 'status'], { cwd: installed(), env })
    expect(status.stdout).toMatch(/applied .* 001_init/)
    const stats = await run('npm', ['run', '-s', 'admin', '--', 'stats'], { cwd: installed(), env })
    expect(JSON.parse(stats.stdout)).toMatchObject({ conversations: expect.any(Number), takenDown: 0 })
    server = await spawnServer([process.execPath, 'dist/main.js'], {
      cwd: installed(),
      env: { ...env, SERVICE_DID, HOST: '127.0.0.1', PORT: '0' },
    })
    expect((await fetch(`${server.url}/xrpc/_health`)).status).toBe(200)
  }, 60_000)

  it('lets another project import catbird-mls-ds/client, type-check against it and talk to the server', async () => {
    if (!server) throw new Error('the packaged server did not start')
    await writeFile(
      path.join(consumer, 'probe.ts'),
      `import { MlsClient, XrpcClientError, type MessageView } from 'catbird-mls-ds/client'

const tokens = JSON.parse(process.env.TOKENS ?? '{}') as Record<string, string>
const client = new MlsClient({ serviceUrl: process.env.SERVICE_URL ?? '', token: async (nsid) => tokens[nsid] ?? '' })
const convo = await client.createConvo({ groupId: process.env.GROUP_ID ?? '', cipherSuite: '${SUITE}' })
const ciphertext = new Uint8Array(Buffer.from(process.env.MESSAGE ?? '', 'base64'))
const sent = await client.sendMessage({ convoId: convo.id, senderDid: process.env.DID ?? '', epoch: 0, ciphertext })
const { messages } = await client.getMessages({ convoId: convo.id })
const first: MessageView | undefined = messages[0]
const refused = await client.getEpoch({ convoId: 'nope' }).catch((err: unknown) => err instanceof XrpcClientError && err.error)
console.log(JSON.stringify({ messageId: sent.messageId, id: first?.id, ciphertext: Array.from(first?.ciphertext ?? []), refused }))
`,
    )
    // The consumer's own compiler settings, with this project's TypeScript.
    const tsc = path.join(projectRoot, 'node_modules', 'typescript', 'bin', 'tsc')
    await run(
      process.execPath,
      [
        tsc,
        '--strict',
        '--module',
        'nodenext',
        '--target',
        'es2022',
        '--types',
        'node',
        '--typeRoots',
        path.join(projectRoot, 'node_modules', '@types'),
        '--outDir',
        '.',
        'probe.ts',
      ],
      { cwd: consumer },
    )

    const alice = await TestUser.create()
    // A real MLS group of one at epoch 0, and a message of it: the server reads its header.
    const groupId = new Uint8Array(randomBytes(16))
    const { data: mlsMessage } = await encrypt(await newGroup(alice.did, groupId), new TextEncoder().encode('hello'))
    const tokens: Record<string, string> = {}
    for (const nsid of [NSID.createConvo, NSID.sendMessage, NSID.getMessages, NSID.getEpoch])
      tokens[nsid] = await alice.token(nsid)
    const { stdout } = await run(process.execPath, ['probe.js'], {
      cwd: consumer,
      env: {
        ...baseEnv(),
        TOKENS: JSON.stringify(tokens),
        SERVICE_URL: server.url,
        DID: alice.did,
        GROUP_ID: hex(groupId),
        MESSAGE: encodeBase64(mlsMessage),
      },
    })
    const result = JSON.parse(stdout) as { messageId: string; id: string; ciphertext: number[]; refused: string }
    expect(result).toEqual({
      messageId: expect.any(String),
      id: result.messageId,
      ciphertext: Array.from(mlsMessage),
      refused: 'ConvoNotFound',
    })
  }, 60_000)
})
