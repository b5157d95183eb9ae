import { execFile } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import { Secp256k1Keypair } from '@atproto/crypto'
import * as prettier from 'prettier'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { baseEnv, SERVICE_DID, startTestApp, type TestApp } from '../helpers/index.js'
import { projectRoot } from '../../src/paths.js'

const run = promisify(execFile)
const guide = path.join(projectRoot, 'src', 'client', 'README.md')
let t: TestApp
let dir: string

/** The SDK guide's example program, as a reader copies it. */
function example(): string {
  const block = /<!-- sdk-example:start -->\n```ts\n([\s\S]*?)```\n<!-- sdk-example:end -->/.exec(
    readFileSync(guide, 'utf8'),
  )?.[1]
  if (!block) throw new Error('src/client/README.md lacks the sdk-example block')
  return block
}

/**
 * The program goes, unchanged, into a project of its own: its node_modules
 * are this checkout's (ts-mls, @atproto/*), and its tsconfig maps the one
 * import a reader would get from the installed package,
 * `catbird-mls-ds/client`, to the SDK's source (as a path alias does), so
 * the program runs against the code of this checkout rather than a build of
 * it. tsx and tsc both read that mapping. test/client/package.test.ts covers
 * the import from the packed tarball itself.
 */
beforeAll(async () => {
  ;[t, dir] = await Promise.all([startTestApp(), mkdtemp(path.join(tmpdir(), 'sdk-example-'))])
  await symlink(path.join(projectRoot, 'node_modules'), path.join(dir, 'node_modules'))
  // An ES module, as the guide says: the program awaits at its top level.
  await writeFile(
    path.join(dir, 'package.json'),
    JSON.stringify({ name: 'sdk-example', private: true, type: 'module' }),
  )
  await writeFile(path.join(dir, 'bot-and-friend.ts'), example())
  await writeFile(
    path.join(dir, 'tsconfig.json'),
    JSON.stringify({
      // The project's own compiler settings (strict), for this one file.
      extends: path.join(projectRoot, 'tsconfig.json'),
      compilerOptions: {
        rootDir: '/',
        noEmit: true,
        paths: { 'catbird-mls-ds/client': [path.join(projectRoot, 'src', 'client', 'index.ts')] },
      },
      // This file alone: `include` would otherwise come from the project's tsconfig.
      files: ['bot-and-friend.ts'],
      include: [],
    }),
  )
})
afterAll(async () => {
  await t?.close()
  if (dir) await rm(dir, { recursive: true, force: true })
})

describe("the SDK guide's example", () => {
  it('type-checks as written, with the strict settings of this project', async () => {
    const tsc = path.join(projectRoot, 'node_modules', 'typescript', 'bin', 'tsc')
    const checked = await run(process.execPath, [tsc, '-p', dir], { cwd: dir }).then(
      () => 'no errors',
      (err: { stdout?: string }) => err.stdout,
    )
    expect(checked).toBe('no errors')
  }, 120_000)

  it('is formatted as the code of this project is', async () => {
    const options = await prettier.resolveConfig(path.join(projectRoot, 'bot-and-friend.ts'))
    expect(await prettier.check(example(), { ...options, parser: 'typescript' })).toBe(true)
  })

  it('runs as written: the friend reads the bot through the server, the bot reads the answer', async () => {
    // The bot's identity from the environment, the friend's made by the program.
    const botKeys = await Secp256k1Keypair.create({ exportable: true })
    const { stdout, stderr } = await run(process.execPath, ['--import', 'tsx', 'bot-and-friend.ts'], {
      cwd: dir,
      env: {
        ...baseEnv(),
        MLS_SERVICE_URL: t.url,
        MLS_SERVICE_DID: SERVICE_DID,
        BOT_PRIVATE_KEY: Buffer.from(await botKeys.export()).toString('hex'),
      },
    })
    expect(stderr).toBe('')
    expect(stdout).toBe('friend read: Hello from the bot\nbot read: Hello, bot\n')

    // Every write was answered, and the Welcome's copy dropped once its join was confirmed.
    const stored = async (file: string) =>
      Object.values(JSON.parse(await readFile(path.join(dir, 'state', file), 'utf8')) as Record<string, unknown>)
    expect(await stored('bot.pending.json')).toEqual([])
    expect(await stored('friend.pending.json')).toEqual([])
    expect(await stored('friend.welcomes.json')).toEqual([])
    // On the server: the bot's conversation at the commit's epoch, the commit and the two messages in it.
    const convos = await t.ctx.db.selectFrom('convo').select(['id', 'creator_did', 'epoch', 'last_seq']).execute()
    expect(convos).toEqual([{ id: expect.any(String), creator_did: botKeys.did(), epoch: 1, last_seq: 3 }])
    const members = await t.ctx.db.selectFrom('member').select('did').where('convo_id', '=', convos[0]!.id).execute()
    expect(members.map((m) => m.did)).toContain(botKeys.did())
    expect(members).toHaveLength(2)
  }, 120_000)
})
