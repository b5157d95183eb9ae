/**
 * A client of APNs's provider API: one HTTP/2 connection, token-based
 * authentication (an ES256 JWT signed with the team's key), one POST per
 * notification, and its answer as APNs gave it. What to do with an answer
 * (send again, forget the token) is the caller's, from `verdictOf`.
 */
import http2 from 'node:http2'
import { createPrivateKey, type KeyObject } from 'node:crypto'
import { SignJWT } from 'jose'

/** Apple's hosts: production, and the sandbox that development builds of an app register with. */
export const APNS_PRODUCTION_ORIGIN = 'https://api.push.apple.com'
export const APNS_SANDBOX_ORIGIN = 'https://api.sandbox.push.apple.com'

/** The largest payload APNs takes for a regular (not VoIP) notification. */
export const MAX_PAYLOAD_BYTES = 4096

export interface ApnsOptions {
  /** The team's token signing key (the .p8 file: PKCS#8, P-256). */
  signingKey: KeyObject
  keyId: string
  teamId: string
  /** The app's bundle id. */
  topic: string
  /** https://host[:port] */
  origin: string
  /** How long a request may go unanswered before it counts as not sent. */
  requestTimeoutMs: number
  /** Certificates to trust instead of the system's and NODE_EXTRA_CA_CERTS (a test server's). */
  ca?: string[] | undefined
  /** The clock the provider token is timed by, in milliseconds. */
  now?: () => number
}

/** One notification to one device. */
export interface ApnsNotification {
  /** The device token, hex. */
  token: string
  /** A canonical UUID, lowercase. */
  apnsId: string
  pushType: 'alert' | 'background'
  priority: 5 | 10
  /** When APNs may stop trying to deliver it, in Unix seconds. */
  expiration: number
  collapseId?: string | undefined
  /** The JSON payload. */
  payload: string
}

/** APNs's answer: its status and, for an error, its reason; status 0 when no answer came. */
export interface ApnsOutcome {
  status: number
  reason?: string
  /** For 410: when APNs last knew the token to be invalid, in milliseconds. */
  timestamp?: number
}

/** What an answer calls for. */
export type Verdict = 'sent' | 'retry' | 'clear-token' | 'drop'

/**
 * Apple: 410 means the token is no longer active, and 400 BadDeviceToken
 * that it is not a token of this environment (neither is retried); 429
 * (too many for this device) and 5xx may succeed later, as may a request
 * that got no answer, or one whose provider token had expired (the next
 * attempt carries a new one). Any other error is this notification's.
 */
export function verdictOf(outcome: ApnsOutcome): Verdict {
  const { status, reason } = outcome
  if (status === 200) return 'sent'
  if (status === 410 || (status === 400 && reason === 'BadDeviceToken')) return 'clear-token'
  if (status === 0 || status === 429 || status >= 500) return 'retry'
  if (status === 403 && reason === 'ExpiredProviderToken') return 'retry'
  return 'drop'
}

/** Apple: a provider token is valid for an hour, and may be replaced at most once every 20 minutes. */
const TOKEN_REFRESH_MS = 40 * 60_000
const TOKEN_MIN_AGE_MS = 20 * 60_000

/**
 * The JWT every request carries: made once and reused by every request
 * until it is 40 minutes old, then replaced.
 */
export class ProviderToken {
  private current: { jwt: Promise<string>; issuedAt: number } | undefined

  constructor(
    private readonly key: KeyObject,
    private readonly keyId: string,
    private readonly teamId: string,
    private readonly now: () => number = Date.now,
  ) {}

  get(): Promise<string> {
    const now = this.now()
    if (!this.current || now - this.current.issuedAt >= TOKEN_REFRESH_MS) {
      const jwt = new SignJWT({})
        .setProtectedHeader({ alg: 'ES256', kid: this.keyId })
        .setIssuer(this.teamId)
        .setIssuedAt(Math.floor(now / 1000))
        .sign(this.key)
      this.current = { jwt, issuedAt: now }
      // A failed signing is not kept: the next request tries again.
      jwt.catch(() => {
        if (this.current?.jwt === jwt) this.current = undefined
      })
    }
    return this.current.jwt
  }

  /** APNs said `jwt` expired: the next request gets a new one, unless that would replace one younger than 20 minutes. */
  async expired(jwt: string): Promise<void> {
    const current = this.current
    if (current && (await current.jwt) === jwt && this.now() - current.issuedAt >= TOKEN_MIN_AGE_MS) {
      this.current = undefined
    }
  }
}

/** Reads a .p8 signing key; throws when it is not a P-256 private key. */
export function readSigningKey(pem: string): KeyObject {
  const key = createPrivateKey(pem)
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    throw new Error('not a P-256 (ES256) private key')
  }
  return key
}

const { HTTP2_HEADER_PATH, HTTP2_HEADER_METHOD, HTTP2_HEADER_STATUS, NGHTTP2_CANCEL, NGHTTP2_REFUSED_STREAM } =
  http2.constants

/** A stream the server refused before processing it (HTTP/2 REFUSED_STREAM): safe to send again. */
const REFUSED: ApnsOutcome = { status: 0, reason: 'refused by a closing connection' }

export class ApnsClient {
  private session: http2.ClientHttp2Session | undefined
  private readonly token: ProviderToken

  constructor(private readonly opts: ApnsOptions) {
    this.token = new ProviderToken(opts.signingKey, opts.keyId, opts.teamId, opts.now)
  }

  /** Sends one notification; resolves with APNs's answer (never rejects). */
  async send(notification: ApnsNotification): Promise<ApnsOutcome> {
    let jwt: string
    try {
      jwt = await this.token.get()
    } catch (err) {
      return { status: 0, reason: `signing failed: ${(err as Error).message}` }
    }
    let outcome = await this.post(notification, jwt)
    // Refused unprocessed by a connection that was closing (GOAWAY): once more, on a new one.
    if (outcome === REFUSED) outcome = await this.post(notification, jwt)
    if (outcome.status === 403 && outcome.reason === 'ExpiredProviderToken') await this.token.expired(jwt)
    return outcome
  }

  /** Closes the connection (requests in flight end as not answered). */
  close(): void {
    this.session?.close()
    this.session = undefined
  }

  /** The connection, opened again when APNs closed it (GOAWAY, an error, idleness). */
  private connection(): http2.ClientHttp2Session {
    const open = this.session
    if (open && !open.closed && !open.destroyed) return open
    const session = http2.connect(this.opts.origin, this.opts.ca ? { ca: this.opts.ca } : {})
    // A failed connection fails its streams, which say so; the next request connects again.
    session.on('error', () => this.forget(session))
    session.on('goaway', () => this.forget(session))
    session.on('close', () => this.forget(session))
    // An idle connection does not keep the process alive.
    session.unref()
    this.session = session
    return session
  }

  private forget(session: http2.ClientHttp2Session): void {
    if (this.session === session) this.session = undefined
  }

  private post(n: ApnsNotification, jwt: string): Promise<ApnsOutcome> {
    return new Promise((resolve) => {
      let settled = false
      const settle = (outcome: ApnsOutcome) => {
        if (settled) return
        settled = true
        resolve(outcome)
      }
      const body = Buffer.from(n.payload)
      let stream: http2.ClientHttp2Stream
      try {
        stream = this.connection().request({
          [HTTP2_HEADER_METHOD]: 'POST',
          [HTTP2_HEADER_PATH]: `/3/device/${n.token}`,
          authorization: `bearer ${jwt}`,
          'apns-id': n.apnsId,
          'apns-topic': this.opts.topic,
          'apns-push-type': n.pushType,
          'apns-priority': String(n.priority),
          'apns-expiration': String(n.expiration),
          ...(n.collapseId !== undefined ? { 'apns-collapse-id': n.collapseId } : {}),
          'content-type': 'application/json',
          'content-length': body.length,
        })
      } catch (err) {
        settle({ status: 0, reason: (err as Error).message })
        return
      }
      let status = 0
      const chunks: Buffer[] = []
      stream.setTimeout(this.opts.requestTimeoutMs, () => {
        settle({ status: 0, reason: 'no answer in time' })
        stream.close(NGHTTP2_CANCEL)
      })
      stream.on('response', (headers) => {
        status = Number(headers[HTTP2_HEADER_STATUS])
      })
      stream.on('data', (chunk: Buffer) => chunks.push(chunk))
      stream.on('end', () => settle(answer(status, Buffer.concat(chunks))))
      stream.on('close', () => {
        if (status) settle(answer(status, Buffer.concat(chunks)))
        else settle(stream.rstCode === NGHTTP2_REFUSED_STREAM ? REFUSED : { status: 0, reason: 'closed' })
      })
      stream.on('error', (err) => {
        if (stream.rstCode !== NGHTTP2_REFUSED_STREAM) settle({ status: 0, reason: err.message })
      })
      stream.end(body)
    })
  }
}

/** An answer's status with the reason (and, for 410, the timestamp) of its JSON body. */
function answer(status: number, body: Buffer): ApnsOutcome {
  if (status === 200 || body.length === 0) return { status }
  try {
    const { reason, timestamp } = JSON.parse(body.toString('utf8')) as { reason?: unknown; timestamp?: unknown }
    return {
      status,
      ...(typeof reason === 'string' ? { reason } : {}),
      ...(typeof timestamp === 'number' ? { timestamp } : {}),
    }
  } catch {
    return { status }
  }
}
