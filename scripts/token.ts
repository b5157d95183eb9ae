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
import { parseArgs } from 'node:util'
// The module itself, not the package's index: that loads the whole XRPC
// server (express, WebSockets), most of this command's start-up time.
import { createServiceJwt } from '@atproto/xrpc-server/dist/auth.js'
import { loadConfig } from '../src/config.js'
import { loadLexicons, xrpcMethods, type XrpcMethod } from '../src/xrpc/lexicons.js'
import { didKeyFile, identity, runCommand, UsageError } from './identity.js'
import { loadProjectEnv } from './project-env.js'

const USAGE = 'usage: npm run token -- <nsid> [--did-key-file F]   or   npm run token -- --did [--did-key-file F]'
const TOKEN_LIFETIME_SECONDS = 600

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
  const keyFile = didKeyFile(values['did-key-file'])
  if (values.did) {
    process.stdout.write(`${(await identity(keyFile)).did()}\n`)
    return
  }

  // The method first: a wrong one is told before anything is written (the identity file).
  const [nsid, ...extra] = positionals
  const methods = xrpcMethods(loadLexicons())
  const method = methods.find((m) => m.nsid === nsid)
  if (!method || extra.length > 0) {
    throw new UsageError(`${USAGE}\nmethods: ${methods.map((m) => m.nsid).join(', ')}`)
  }
  loadProjectEnv()
  const config = loadConfig()
  const keypair = await identity(keyFile)
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

runCommand(import.meta.url, main)
