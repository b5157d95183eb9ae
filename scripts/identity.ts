/**
 * What the development commands (`npm run token`, `npm run mls`) share: the
 * local did:key identity, kept in a mode-600 file, and how a command ends.
 * Kept light (no config, no lexicons, no XRPC): `npm run mls` and
 * `npm run token -- --did` load nothing more.
 */
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { pathToFileURL } from 'node:url'
import { Secp256k1Keypair } from '@atproto/crypto'
import { projectRoot } from '../src/paths.js'
import { StartupError } from '../src/startup-error.js'

const DEFAULT_KEY_FILE = path.join(projectRoot, 'data', 'did-key.json')

interface StoredIdentity {
  did: string
  /** secp256k1 private key, hex. */
  privateKey: string
}

export class UsageError extends Error {}

/** The `--did-key-file` option's file: relative to where npm was run, not to the project root npm moves to. */
export const didKeyFile = (option: string | undefined): string =>
  option ? path.resolve(process.env.INIT_CWD ?? process.cwd(), option) : DEFAULT_KEY_FILE

/** The text of `file`, which holds private keys; undefined when there is none. Refused when other users can read it. */
export async function readPrivateFile(file: string): Promise<string | undefined> {
  const mode = await stat(file).then(
    (s) => s.mode & 0o777,
    () => undefined,
  )
  if (mode === undefined) return undefined
  if (mode & 0o077)
    throw new UsageError(`${file} holds private keys but other users can read it; run chmod 600 ${file}`)
  return readFile(file, 'utf8')
}

/** The identity in `file`, created there (mode 600) on first use. */
export async function identity(file: string): Promise<Secp256k1Keypair> {
  const text = await readPrivateFile(file)
  if (text === undefined) {
    const keypair = await Secp256k1Keypair.create({ exportable: true })
    const stored: StoredIdentity = {
      did: keypair.did(),
      privateKey: Buffer.from(await keypair.export()).toString('hex'),
    }
    await mkdir(path.dirname(file), { recursive: true })
    // 'wx': never overwrite an identity another run created meanwhile.
    await writeFile(file, `${JSON.stringify(stored, null, 2)}\n`, { mode: 0o600, flag: 'wx' })
    process.stderr.write(`created a did:key identity in ${file}\n`)
    return keypair
  }
  const stored = JSON.parse(text) as StoredIdentity
  return Secp256k1Keypair.import(stored.privateKey)
}

/**
 * Runs `main` when `moduleUrl` is the program node was started with (not
 * when a test imports the module): a usage or configuration error is one
 * line on stderr, anything else its stack; exit status 1.
 */
export function runCommand(moduleUrl: string, main: () => Promise<void>): void {
  if (!process.argv[1] || moduleUrl !== pathToFileURL(process.argv[1]).href) return
  main().catch((err: unknown) => {
    const known = err instanceof UsageError || err instanceof StartupError
    process.stderr.write(`${known ? err.message : err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`)
    process.exit(1)
  })
}
