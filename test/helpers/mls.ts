import { randomBytes } from 'node:crypto'
import type { XrpcCall } from './xrpc.js'

/** Anything that can call the server: a TestApp, or { call: xrpcClient(url) }. */
type Caller = { call: XrpcCall }
import type { TestUser } from './users.js'

export const NS = 'blue.catbird.mls'
export const SUITE = 'MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519'

export const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64')
export const bytesJson = (bytes: Uint8Array) => ({ $bytes: Buffer.from(bytes).toString('base64').replace(/=+$/, '') })
export const randomGroupId = () => randomBytes(16).toString('hex')

export interface ConvoBody {
  id: string
  epoch: number
  members: Array<{ did: string; joinedAt: string }>
  [key: string]: unknown
}

/** Creates a conversation and fails the test unless it worked. */
export async function createConvo(
  t: Caller,
  creator: TestUser,
  members: TestUser[] = [],
  extra: Record<string, unknown> = {},
): Promise<ConvoBody> {
  const res = await t.call<ConvoBody>(creator, `${NS}.createConvo`, {
    input: {
      groupId: randomGroupId(),
      cipherSuite: SUITE,
      initialMembers: members.map((m) => m.did),
      ...(members.length ? { welcomeMessage: b64(randomBytes(64)) } : {}),
      ...extra,
    },
  })
  if (res.status !== 200) throw new Error(`createConvo: ${res.status} ${JSON.stringify(res.body)}`)
  return res.body
}

export function sendMessage(
  t: Caller,
  sender: TestUser,
  convoId: string,
  opts: { epoch?: number; ciphertext?: Uint8Array; idempotencyKey?: string; headers?: Record<string, string> } = {},
) {
  return t.call<{ messageId: string; receivedAt: string }>(sender, `${NS}.sendMessage`, {
    input: {
      convoId,
      senderDid: sender.did,
      epoch: opts.epoch ?? 0,
      ciphertext: bytesJson(opts.ciphertext ?? randomBytes(32)),
      ...(opts.idempotencyKey !== undefined ? { idempotencyKey: opts.idempotencyKey } : {}),
    },
    ...(opts.headers ? { headers: opts.headers } : {}),
  })
}

export function publishKeyPackage(t: Caller, user: TestUser, data: Uint8Array = randomBytes(200), extra: Record<string, unknown> = {}) {
  return t.call<{ available: number }>(user, `${NS}.publishKeyPackage`, {
    input: { keyPackage: b64(data), cipherSuite: SUITE, ...extra },
  })
}
