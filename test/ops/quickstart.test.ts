import { execFile } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { chmod, readFile, stat } from 'node:fs/promises'
import path from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { curlLine } from '../../scripts/token.js'
import { projectRoot } from '../../src/paths.js'
import { xrpcMethods } from '../../src/xrpc/lexicons.js'
import { startTestApp, type TestApp } from '../helpers/app.js'
import { baseEnv } from '../helpers/child-server.js'
import { copyProject, type ProjectCopy } from '../helpers/project-copy.js'
import { SERVICE_DID, TestUser } from '../helpers/users.js'

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

/** bash in the project copy (where `npm run token` keeps its identities), talking to the test server. */
const bash = (script: string) =>
  run('bash', ['-euo', 'pipefail', '-c', script.replaceAll('http://localhost:3000', t.url)], {
    cwd: copy.dir,
    env: { ...baseEnv(), SERVICE_DID },
  })

describe('README quickstart', () => {
  it('works as pasted: a did:key token, publishKeyPackage, createConvo, sendMessage and its retry, getMessages', async () => {
    const { stdout, stderr } = await bash(quickstart())
    const [published, conversation, sent, resent, read, ...rest] = stdout.trim().split('\n')
    expect(rest).toEqual([])
    expect(JSON.parse(published ?? '')).toEqual({ available: 1 })
    const convoId = /^conversation (\w+)$/.exec(conversation ?? '')?.[1]
    expect(convoId).toBeDefined()
    const message = JSON.parse(sent ?? '') as { messageId: string; receivedAt: string }
    expect(message).toEqual({ messageId: expect.any(String), receivedAt: expect.any(String) })
    // The retry with the same key is answered with the same message, stored once.
    expect(resent).toBe(sent)
    const identityFile = path.join(copy.dir, 'data', 'alice.json')
    const { did } = JSON.parse(await readFile(identityFile, 'utf8')) as { did: string }
    expect(JSON.parse(read ?? '')).toEqual({
      messages: [
        {
          id: message.messageId,
          convoId,
          sender: did,
          ciphertext: { $bytes: expect.stringMatching(/^[A-Za-z0-9+/]{43}=$/) },
          epoch: 0,
          seq: 1,
          createdAt: message.receivedAt,
        },
      ],
    })
    expect(stderr).toContain(`created a did:key identity in ${identityFile}`)
    expect((await stat(identityFile)).mode & 0o777).toBe(0o600)
  }, 120_000)

  it('npm run token refuses an identity file other users can read', async () => {
    const file = path.join(copy.dir, 'data', 'shared.json')
    await bash(`npm run -s token -- --did --did-key-file ${file}`)
    await chmod(file, 0o644)
    await expect(bash(`npm run -s token -- --did --did-key-file ${file}`)).rejects.toMatchObject({
      stderr: expect.stringContaining(`other users can read it; run chmod 600 ${file}`),
    })
  }, 60_000)

  it('the curl line npm run token prints for people runs as printed', async () => {
    const alice = await TestUser.create()
    const getConvos = xrpcMethods(t.ctx.lexicons).find((m) => m.nsid === 'blue.catbird.mls.getConvos')
    if (!getConvos) throw new Error('no getConvos method')
    const line = curlLine(getConvos, await alice.token(getConvos.nsid), t.url)
    expect(JSON.parse((await bash(line)).stdout)).toEqual({ conversations: [] })
  })
})
