/**
 * What a push says, to whom. The keys are the ones Catbird's notification
 * service extension reads (its NotificationService.swift; upstream mls-ds
 * sends the same): `type: "mls_message"` gets the extension to decrypt
 * `ciphertext` (base64) in `convo_id` (the MLS group id, hex) as the account
 * `recipient_did` (or `recipient_account`, the SHA-256 of the DID in hex,
 * which builds since February 2026 prefer), with `message_id`, `seq` and
 * `epoch` to find it again; without the ciphertext it shows a generic alert
 * and the app fetches the message. `aps` carries the alert shown until the
 * extension replaces it (`mutable-content` lets it run; it checks for the
 * body "Decrypting..." when it runs out of time).
 */
import { createHash } from 'node:crypto'
import { MAX_PAYLOAD_BYTES, type ApnsNotification } from './apns.js'

/** `message`: what the extension reads; `wake`: a bare alert, naming nothing. */
export type PayloadMode = 'message' | 'wake'
/** How a `message` push names its account. */
export type RecipientKey = 'did' | 'sha256'

export interface PayloadOptions {
  mode: PayloadMode
  recipientKey: RecipientKey
}

/** What is pushed to one device. */
export type PushContent =
  | {
      kind: 'message' | 'commit'
      /** Our id of the conversation: its collapse id. */
      convoId: string
      /** The MLS group id, lowercase hex: the conversation as the app knows it. */
      groupId: string
      messageId: string
      seq: number
      epoch: number
      /** The message as stored, when it was read (small enough to fit). */
      ciphertext?: Uint8Array | undefined
      recipient: string
    }
  | { kind: 'welcome'; convoId: string; groupId: string; recipient: string }

/** A notification's content and headers, for any device token. */
export type BuiltPush = Omit<ApnsNotification, 'token' | 'apnsId' | 'expiration'>

const ALERT = { title: 'New Message', body: 'Decrypting...' }
const WELCOME_ALERT = { title: 'New Conversation', body: 'You were added to a conversation' }
const WAKE_ALERT = { title: 'New Message', body: 'You have something new' }
/** In `wake` mode every push collapses into one: nothing tells conversations apart. */
const WAKE_COLLAPSE_ID = 'wake'

const json = (value: unknown) => JSON.stringify(value)
const fits = (payload: string) => Buffer.byteLength(payload) <= MAX_PAYLOAD_BYTES

export function buildPush(content: PushContent, opts: PayloadOptions): BuiltPush {
  const background = content.kind === 'commit'
  // A commit has nothing to show: a background push wakes the app to fetch it.
  const headers = background
    ? ({ pushType: 'background', priority: 5 } as const)
    : ({ pushType: 'alert', priority: 10 } as const)
  if (opts.mode === 'wake') {
    const aps = background ? { 'content-available': 1 } : { alert: WAKE_ALERT, sound: 'default' }
    return { ...headers, collapseId: WAKE_COLLAPSE_ID, payload: json({ aps }) }
  }
  const recipient =
    opts.recipientKey === 'did'
      ? { recipient_did: content.recipient }
      : { recipient_account: createHash('sha256').update(content.recipient).digest('hex') }
  const collapse = { collapseId: content.convoId }
  if (content.kind === 'welcome') {
    const aps = { alert: WELCOME_ALERT, sound: 'default' }
    return {
      ...headers,
      ...collapse,
      payload: json({ aps, type: 'mls_welcome', convo_id: content.groupId, ...recipient }),
    }
  }
  const fields = {
    type: background ? 'mls_commit' : 'mls_message',
    convo_id: content.groupId,
    message_id: content.messageId,
    ...recipient,
    seq: content.seq,
    epoch: content.epoch,
  }
  const aps = background ? { 'content-available': 1 } : { alert: ALERT, 'mutable-content': 1, sound: 'default' }
  const bare = json({ aps, ...fields })
  if (background || content.ciphertext === undefined) return { ...headers, ...collapse, payload: bare }
  // The ciphertext only when the whole payload stays within APNs's limit.
  const full = json({ aps, ...fields, ciphertext: Buffer.from(content.ciphertext).toString('base64') })
  return { ...headers, ...collapse, payload: fits(full) ? full : bare }
}

/**
 * The largest ciphertext any push could carry (base64 takes 4 bytes for
 * every 3, and the rest of the payload at least what it takes with every
 * other field empty): a longer one is not even read.
 */
export const MAX_PUSHED_CIPHERTEXT_BYTES = (() => {
  const { payload } = buildPush(
    {
      kind: 'message',
      convoId: '',
      groupId: '',
      messageId: '',
      seq: 0,
      epoch: 0,
      recipient: '',
      ciphertext: new Uint8Array(),
    },
    { mode: 'message', recipientKey: 'did' },
  )
  return Math.floor((MAX_PAYLOAD_BYTES - Buffer.byteLength(payload)) / 4) * 3
})()

/**
 * The `apns-id` of one push to one device: the same every time it is sent
 * (after a restart too), a UUID made of SHA-256 of what identifies it
 * (version 8, RFC 9562).
 */
export function apnsIdOf(parts: {
  convoId: string
  seq: number
  kind: string
  userDid: string
  deviceId: string
}): string {
  const digest = createHash('sha256')
    .update(JSON.stringify([parts.convoId, parts.seq, parts.kind, parts.userDid, parts.deviceId]))
    .digest()
  digest[6] = ((digest[6] as number) & 0x0f) | 0x80
  digest[8] = ((digest[8] as number) & 0x3f) | 0x80
  const hex = digest.subarray(0, 16).toString('hex')
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`
}
