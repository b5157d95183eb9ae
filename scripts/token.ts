/**
 * `npm run token -- <nsid> [--did-key-file F]`: a service-auth token for one
 * method of the local server, from a local did:key identity (created on first
 * use, kept in a mode-600 file). The token goes to stdout, so that
 * `TOKEN=$(npm run -s token -- <nsid>)` works; in a terminal, a ready curl
 * line follows on stderr. `npm run token -- --did [--did-key-file F]` prints
 * the identity's DID instead.
 *
 * Any did:key is a valid caller (its DID is its public key), so this is for
 * development and tests; real clients get tokens from their PDS.
 */
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { parseArgs } from 'node:util'
import { Secp256k1Keypair } from '@atproto/crypto'
import { createServiceJwt } from '@atproto/xrpc-server'
import { ConfigError, loadConfig } from '../src/config.js'
import { projectRoot } from '../src/paths.js'
import { loadLexicons, xrpcMethods, type XrpcMethod } from '../src/xrpc/lexicons.js'
import { loadProjectEnv } from './project-env.js'

const USAGE = 'usage: npm run token -- <nsid> [--did-key-file F]   or   npm run token -- --did [--did-key-file F]'
const DEFAULT_KEY_FILE = path.join(projectRoot, 'data', 'did-key.json')
const TOKEN_LIFETIME_SECONDS = 600

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

/** Runs a command: a usage or configuration error is one line on stderr, anything else its stack; exit status 1. */
export function runCommand(main: () => Promise<void>): void {
  main().catch((err: unknown) => {
    const known = err instanceof UsageError || err instanceof ConfigError
    process.stderr.write(`${known ? err.message : err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`)
    process.exit(1)
  })
}

type FieldSchemas = { required?: string[]; properties?: Record<string, { type: string }> }

/** The required fields of a params or input schema, with placeholders showing what to fill in. */
function requiredFields(schema: FieldSchemas | undefined): Record<string, unknown> {
  const placeholder = (name: string, type: string | undefined): unknown =>
    ({ integer: 0, boolean: false, bytes: { $bytes: '<base64>' }, array: [] })[type ?? ''] ?? `<${name}>`
  return Object.fromEntries(
    (schema?.required ?? []).map((name) => [name, placeholder(name, schema?.properties?.[name]?.type)]),
  )
}

export function curlLine(method: XrpcMethod, token: string, baseUrl: string): string {
  const auth = `-H 'Authorization: Bearer ${token}'`
  if (method.def.type === 'query') {
    const params = Object.keys(requiredFields(method.def.parameters)).map((name) => `${name}=<${name}>`)
    return `curl -s '${baseUrl}/xrpc/${method.nsid}${params.length ? `?${params.join('&')}` : ''}' ${auth}`
  }
  const input = JSON.stringify(requiredFields(method.def.input?.schema as FieldSchemas | undefined))
  return `curl -s '${baseUrl}/xrpc/${method.nsid}' ${auth} -H 'Content-Type: application/json' -d '${input}'`
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    options: { did: { type: 'boolean' }, 'did-key-file': { type: 'string' } },
    allowPositionals: true,
  })
  loadProjectEnv()
  const config = loadConfig()
  const keypair = await identity(didKeyFile(values['did-key-file']))
  if (values.did) {
    process.stdout.write(`${keypair.did()}\n`)
    return
  }

  const [nsid, ...extra] = positionals
  const methods = xrpcMethods(loadLexicons())
  const method = methods.find((m) => m.nsid === nsid)
  if (!method || extra.length > 0) {
    throw new UsageError(`${USAGE}\nmethods: ${methods.map((m) => m.nsid).join(', ')}`)
  }
  const token = await createServiceJwt({
    iss: keypair.did(),
    aud: config.SERVICE_DID,
    lxm: method.nsid,
    keypair,
    exp: Math.floor(Date.now() / 1000) + TOKEN_LIFETIME_SECONDS,
  })
  process.stdout.write(`${token}\n`)
  // Scripts capture the token alone; people get the curl line to start from.
  if (!process.stdout.isTTY) return
  const host = ['0.0.0.0', '::'].includes(config.HOST) ? 'localhost' : config.HOST
  process.stderr.write(
    `token for ${method.nsid} as ${keypair.did()}, audience ${config.SERVICE_DID}, valid ${TOKEN_LIFETIME_SECONDS / 60} minutes:\n` +
      `${curlLine(method, token, `http://${host}:${config.PORT}`)}\n`,
  )
}

if (import.meta.url === `file://${process.argv[1]}`) runCommand(main)
