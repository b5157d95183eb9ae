/**
 * `npm run mls -- <command> [--did-key-file F]`: a small local MLS client
 * (ts-mls) for the identity of `npm run token`, so that the server can be
 * tried with real MLS from a shell:
 *
 *   key-package          a new KeyPackage whose basic credential is the identity's DID
 *   group                a new group of one at epoch 0; prints its group id (hex)
 *   message <group> <text>  an application message (PrivateMessage) in that group
 *
 * MLS objects go to stdout as base64 MLSMessages (RFC 9420 §6). The MLS keys
 * are the client's own, not the did:key's (MLS signs with a key of its own,
 * named by the credential). What a client must keep (the private keys of its
 * key packages, its groups' state) is kept in a mode-600 file beside the
 * identity (`data/alice.json` → `data/alice.mls.json`). One command at a time
 * per identity: each reads the file and replaces it.
 */
import { rename, writeFile } from 'node:fs/promises'
import { parseArgs } from 'node:util'
import { decodeGroupState, encodeGroupState, type ClientState } from 'ts-mls'
import { defaultClientConfig } from 'ts-mls/clientConfig.js'
import { encodeBase64 } from '../src/lexicon/wire.js'
import { encodeKeyPackage, encrypt, newGroup, newKeyPackage } from './mls-client.js'
import { didKeyFile, identity, readPrivateFile, runCommand, UsageError } from './identity.js'

const USAGE = `usage: npm run mls -- key-package [--did-key-file F]
       npm run mls -- group [--did-key-file F]
       npm run mls -- message <group id> <text> [--did-key-file F]`

const GROUP_ID_BYTES = 16

/** The client's private state, as kept on disk: bytes in base64. */
export interface StoredState {
  /** By KeyPackageRef (hex): the published key package and the private keys that join with it. */
  keyPackages: Record<
    string,
    { keyPackage: string; initPrivateKey: string; hpkePrivateKey: string; signaturePrivateKey: string }
  >
  /** By group id (hex): the encoded GroupState (ts-mls). */
  groups: Record<string, string>
}

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex')

/** Where the client state of the identity in `identityFile` is kept. */
export const stateFile = (identityFile: string): string => `${identityFile.replace(/\.json$/, '')}.mls.json`

/** Replaces the state file whole (a crash leaves the old one or the new one), mode 600. */
async function writeState(file: string, state: StoredState): Promise<void> {
  const temporary = `${file}.${process.pid}.tmp`
  await writeFile(temporary, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 })
  await rename(temporary, file)
}

const encodeClientState = (state: ClientState): string => encodeBase64(encodeGroupState(state))

export function decodeClientState(encoded: string): ClientState {
  const decoded = decodeGroupState(Buffer.from(encoded, 'base64'), 0)
  if (!decoded) throw new Error('the stored group state does not decode')
  return { ...decoded[0], clientConfig: defaultClientConfig }
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({ options: { 'did-key-file': { type: 'string' } }, allowPositionals: true })
  const [command, ...args] = positionals
  const keyFile = didKeyFile(values['did-key-file'])
  const expected = { 'key-package': 0, group: 0, message: 2 }[command ?? '']
  if (expected === undefined || args.length !== expected) throw new UsageError(USAGE)

  const did = (await identity(keyFile)).did()
  const file = stateFile(keyFile)
  const kept = await readPrivateFile(file)
  const state: StoredState = kept === undefined ? { keyPackages: {}, groups: {} } : JSON.parse(kept)
  let output: string
  if (command === 'key-package') {
    const made = await newKeyPackage(did)
    output = encodeBase64(encodeKeyPackage(made.publicPackage))
    const { initPrivateKey, hpkePrivateKey, signaturePrivateKey } = made.privatePackage
    state.keyPackages[hex(made.ref)] = {
      keyPackage: output,
      initPrivateKey: encodeBase64(initPrivateKey),
      hpkePrivateKey: encodeBase64(hpkePrivateKey),
      signaturePrivateKey: encodeBase64(signaturePrivateKey),
    }
  } else if (command === 'group') {
    const groupId = crypto.getRandomValues(new Uint8Array(GROUP_ID_BYTES))
    output = hex(groupId)
    state.groups[output] = encodeClientState(await newGroup(did, groupId))
  } else {
    const [given, text] = args as [string, string]
    const groupId = given.toLowerCase()
    const stored = state.groups[groupId]
    if (!stored) throw new UsageError(`${file} has no group ${given}; make one with npm run mls -- group`)
    // The state after the message: its key is used up, the next message takes the next one.
    const made = await encrypt(decodeClientState(stored), new TextEncoder().encode(text))
    state.groups[groupId] = encodeClientState(made.state)
    output = encodeBase64(made.data)
  }
  // Kept before it is printed: a key package or message is never out without the state that goes with it.
  await writeState(file, state)
  if (kept === undefined) process.stderr.write(`keeping MLS private keys and group state in ${file}\n`)
  process.stdout.write(`${output}\n`)
}

runCommand(import.meta.url, main)
