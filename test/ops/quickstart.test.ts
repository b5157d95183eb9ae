import { execFile } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { chmod, readFile, stat, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { promisify } from 'node:util'
import { decodeMlsMessage, emptyPskIndex, joinGroup } from 'ts-mls'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { decodeClientState, stateFile, type StoredState } from '../../scripts/mls.js'
import { curlLine } from '../../scripts/token.js'
import {
  addProposal,
  base64Bytes,
  baseEnv,
  commit,
  copyProject,
  hex,
  newGroup,
  NSID,
  type ProjectCopy,
  receive,
  SERVICE_DID,
  startTestApp,
  suiteImpl,
  type TestApp,
  TestUser,
} from '../helpers/index.js'
import { readMessageHeader } from '../../src/mls/index.js'
import { projectRoot } from '../../src/paths.js'
import { xrpcMethods } from '../../src/xrpc/lexicons.js'

const run = promisify(execFile)
let t: TestApp
let copy: ProjectCopy

beforeAll(async () => {
  ;[t, copy] = await Promise.all([startTestApp(), copyProject()])
})
afterAll(async () => {
  await t?.close()
  await copy?.remove()
})

/** The README's quickstart, as a reader copies it. */
function quickstart(): string {
  const readme = readFileSync(path.join(projectRoot, 'README.md'), 'utf8')
  const block = /<!-- quickstart:start -->\n```sh\n([\s\S]*?)```\n<!-- quickstart:end -->/.exec(readme)?.[1]
  if (!block) throw new Error('README.md lacks the quickstart block')
  return block
}

/** bash in the project copy (where `npm run token` and `npm run mls` keep their files), talking to the test server. */
const bash = (script: string) =>
  run('bash', ['-euo', 'pipefail', '-c', script.replaceAll('http://localhost:3000', t.url)], {
    cwd: copy.dir,
    env: { ...baseEnv(), SERVICE_DID },
  })

/** What `npm run mls` keeps for the identity in `file`. */
const keptState = async (file: string) => JSON.parse(await readFile(stateFile(file), 'utf8')) as StoredState

describe('README quickstart', () => {
  it('works as pasted, with real MLS: publishKeyPackage, createConvo, sendMessage and its retry, getMessages', async () => {
    // The block as pasted, then what it sent, from the same shell.
    const { stdout, stderr } = await bash(`${quickstart()}echo "$GROUP $CIPHERTEXT"\n`)
    const [published, conversation, sent, resent, read, sentBytes, ...rest] = stdout.trim().split('\n')
    expect(rest).toEqual([])
    const [groupId, ciphertext] = (sentBytes ?? '').split(' ')
    expect(JSON.parse(published ?? '')).toEqual({ available: 1 })
    const convoId = /^conversation (\w+)$/.exec(conversation ?? '')?.[1]
    expect(convoId).toBeDefined()
    const message = JSON.parse(sent ?? '') as { messageId: string; receivedAt: string }
    expect(message).toEqual({ messageId: expect.any(String), receivedAt: expect.any(String), seq: 1, epoch: 0 })
    // The retry with the same key is answered with the same message, stored once.
    expect(resent).toBe(sent)
    const identityFile = path.join(copy.dir, 'data', 'alice.json')
    const { did } = JSON.parse(await readFile(identityFile, 'utf8')) as { did: string }
    const body = JSON.parse(read ?? '') as { messages: Array<{ ciphertext: { $bytes: string } }> }
    expect(body).toEqual({
      messages: [
        {
          id: message.messageId,
          convoId,
          sender: did,
          ciphertext: { $bytes: expect.any(String) },
          epoch: 0,
          seq: 1,
          createdAt: message.receivedAt,
          messageType: 'app',
        },
      ],
      lastSeq: 1,
      gapInfo: { hasGaps: false, missingSeqs: [], totalMessages: 1 },
    })
    // Read back byte for byte: the application message of the group made in step 2, at epoch 0.
    const stored = base64Bytes(body.messages[0]?.ciphertext.$bytes ?? '')
    expect(stored).toEqual(base64Bytes(ciphertext ?? ''))
    expect(readMessageHeader(stored)).toEqual({
      wireFormat: 'PrivateMessage',
      groupId,
      epoch: 0,
      contentType: 'application',
    })
    expect(stderr).toContain(`created a did:key identity in ${identityFile}`)
    expect(stderr).toContain(`keeping MLS private keys and group state in ${stateFile(identityFile)}`)
    for (const file of [identityFile, stateFile(identityFile)]) expect((await stat(file)).mode & 0o777).toBe(0o600)
  }, 120_000)

  it('npm run token refuses an identity file other users can read', async () => {
    const file = path.join(copy.dir, 'data', 'shared.json')
    await bash(`npm run -s token -- --did --did-key-file ${file}`)
    await chmod(file, 0o644)
    await expect(bash(`npm run -s token -- --did --did-key-file ${file}`)).rejects.toMatchObject({
      stderr: expect.stringContaining(`other users can read it; run chmod 600 ${file}`),
    })
  }, 60_000)

  it('npm run token without a method prints its usage and writes nothing (no identity file)', async () => {
    const file = path.join(copy.dir, 'data', 'nobody.json')
    for (const args of ['', 'blue.catbird.mls.noSuchMethod']) {
      await expect(bash(`npm run -s token -- ${args} --did-key-file ${file}`)).rejects.toMatchObject({
        stderr: expect.stringMatching(/usage: npm run token -- <nsid>.*\nmethods: (blue\.catbird\.mls\.\w+, )+/),
      })
    }
    expect(existsSync(file)).toBe(false)
  }, 60_000)

  it('npm run token runs compiled, and is compiled again once a source changes', async () => {
    const compiling = 'compiling the development commands into dist/dev/'
    const did = () => bash('npm run -s token -- --did --did-key-file data/compiled.json')
    await did()
    const current = await did()
    expect(current.stderr).not.toContain(compiling)
    expect(current.stdout).toMatch(/^did:key:/)
    // A visible change to a source: the next call compiles it and runs it.
    const source = path.join(copy.dir, 'scripts', 'token.ts')
    await writeFile(
      source,
      (await readFile(source, 'utf8')).replace("'usage: npm run token", "'usage (edited): npm run token"),
    )
    const edited = await bash('npm run -s token').catch((err: { stderr: string }) => err)
    expect(edited.stderr).toContain(compiling)
    expect(edited.stderr).toContain('usage (edited): npm run token')
  }, 120_000)

  it('the curl line npm run token prints for people runs as printed', async () => {
    const alice = await TestUser.create()
    const getConvos = xrpcMethods(t.ctx.lexicons).find((m) => m.nsid === NSID.getConvos)
    if (!getConvos) throw new Error('no getConvos method')
    const line = curlLine(getConvos, await alice.token(getConvos.nsid), t.url)
    expect(JSON.parse((await bash(line)).stdout)).toEqual({ conversations: [] })
  })
})

describe('npm run mls', () => {
  it('keeps the private keys of the key packages it prints: a Welcome to one can be joined', async () => {
    const file = path.join(copy.dir, 'data', 'carol.json')
    const printed = base64Bytes((await bash(`npm run -s mls -- key-package --did-key-file ${file}`)).stdout)
    const kept = Object.values((await keptState(file)).keyPackages)
    expect(kept.map((kp) => base64Bytes(kp.keyPackage))).toEqual([printed])

    // Bob adds that key package to a group of his, as he would after getKeyPackages.
    const bob = await TestUser.create()
    const groupId = crypto.getRandomValues(new Uint8Array(16))
    const added = await commit(await newGroup(bob.did, groupId), [addProposal(printed)])
    const welcome = decodeMlsMessage(added.welcome as Uint8Array, 0)?.[0]
    const keyPackage = decodeMlsMessage(printed, 0)?.[0]
    if (welcome?.wireformat !== 'mls_welcome' || keyPackage?.wireformat !== 'mls_key_package')
      throw new Error('not a Welcome and a key package')
    const keys = kept[0] as StoredState['keyPackages'][string]
    const joined = await joinGroup(
      welcome.welcome,
      keyPackage.keyPackage,
      {
        initPrivateKey: base64Bytes(keys.initPrivateKey),
        hpkePrivateKey: base64Bytes(keys.hpkePrivateKey),
        signaturePrivateKey: base64Bytes(keys.signaturePrivateKey),
      },
      emptyPskIndex,
      await suiteImpl(),
    )
    expect(hex(joined.groupContext.groupId)).toBe(hex(groupId))
    expect(joined.groupContext.epoch).toBe(1n)
  }, 60_000)

  it('sends from the group it keeps: each message takes the next key, and the group reads them in order', async () => {
    const file = path.join(copy.dir, 'data', 'dave.json')
    const mls = async (args: string) => (await bash(`npm run -s mls -- ${args} --did-key-file ${file}`)).stdout.trim()
    const groupId = await mls('group')
    expect(groupId).toMatch(/^[0-9a-f]{32}$/)
    // The group as it was before the messages: it holds the keys they are encrypted with.
    const before = decodeClientState((await keptState(file)).groups[groupId] as string)
    expect(before.groupContext.epoch).toBe(0n)

    const first = base64Bytes(await mls(`message ${groupId} 'first words'`))
    const second = base64Bytes(await mls(`message ${groupId} 'second words'`))
    for (const data of [first, second]) {
      expect(readMessageHeader(data)).toEqual({
        wireFormat: 'PrivateMessage',
        groupId,
        epoch: 0,
        contentType: 'application',
      })
    }
    // Had the state not moved on, both would use the first key, and the second could not be read after it.
    const readFirst = await receive(before, first)
    const readSecond = await receive(readFirst.state, second)
    expect(new TextDecoder().decode(readFirst.text)).toBe('first words')
    expect(new TextDecoder().decode(readSecond.text)).toBe('second words')

    await expect(mls('message 00ff hello')).rejects.toMatchObject({
      stderr: expect.stringContaining(`${stateFile(file)} has no group 00ff; make one with npm run mls -- group`),
    })
  }, 60_000)
})
