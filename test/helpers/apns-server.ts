/**
 * A local stand-in for APNs: an HTTP/2 server over TLS (a certificate of a
 * throwaway CA made here, at test time) that takes the provider API's
 * requests as Apple documents them ("Sending notification requests to APNs",
 * "Establishing a token-based connection to APNs", "Handling notification
 * responses from APNs"): POST /3/device/<hex token>; apns-topic,
 * apns-push-type (alert, background), apns-priority (10, or 5; 5 for
 * background), apns-id (a lowercase canonical UUID), apns-expiration,
 * apns-collapse-id (at most 64 bytes); a bearer JWT signed ES256 by the
 * team's key (kid, iss, iat within the hour); a payload of at most 4096
 * bytes. It answers as APNs does, with the reasons Apple lists, and can be
 * told to answer a token with errors first (410, 400 BadDeviceToken, 429,
 * 500) or to hold its answers.
 */
import { generateKeyPairSync, randomUUID, type KeyObject } from 'node:crypto'
import { writeFile } from 'node:fs/promises'
import http2 from 'node:http2'
import type { AddressInfo } from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { decodeProtectedHeader, jwtVerify } from 'jose'
import forge from 'node-forge'

/** An APNs signing key as Apple hands it out (a .p8 file: PKCS#8 PEM, P-256), made for one test. */
export interface TestSigningKey {
  keyId: string
  teamId: string
  /** The .p8 file's content. */
  pem: string
  publicKey: KeyObject
}

export function testSigningKey(keyId = 'KEY1234567', teamId = 'TEAM123456'): TestSigningKey {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' })
  return { keyId, teamId, pem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, publicKey }
}

/** An RSA key pair from node:crypto, as node-forge takes it (its own key generation is slow). */
function forgeKeys(): { privateKey: forge.pki.rsa.PrivateKey; publicKey: forge.pki.rsa.PublicKey; pem: string } {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
  const pem = privateKey.export({ type: 'pkcs1', format: 'pem' }) as string
  const forgeKey = forge.pki.privateKeyFromPem(pem)
  return { privateKey: forgeKey, publicKey: forge.pki.setRsaPublicKey(forgeKey.n, forgeKey.e), pem }
}

/** A certificate of `subject`'s key, signed by `issuer`'s (itself when none). */
function certificate(args: {
  serial: string
  subject: string
  keys: ReturnType<typeof forgeKeys>
  issuer?: { cert: forge.pki.Certificate; keys: ReturnType<typeof forgeKeys> }
  extensions: object[]
}): forge.pki.Certificate {
  const cert = forge.pki.createCertificate()
  cert.serialNumber = args.serial
  cert.publicKey = args.keys.publicKey
  cert.validity.notBefore = new Date(Date.now() - 60_000)
  cert.validity.notAfter = new Date(Date.now() + 86_400_000)
  cert.setSubject([{ name: 'commonName', value: args.subject }])
  cert.setIssuer(args.issuer ? args.issuer.cert.subject.attributes : [{ name: 'commonName', value: args.subject }])
  cert.setExtensions(args.extensions)
  cert.sign((args.issuer?.keys ?? args.keys).privateKey, forge.md.sha256.create())
  return cert
}

/** A throwaway CA, and a certificate for localhost / 127.0.0.1 it signed, in PEM. */
function throwawayTls(): { ca: string; cert: string; key: string } {
  const caKeys = forgeKeys()
  const ca = certificate({
    serial: '01',
    subject: 'catbird-mls-ds test CA',
    keys: caKeys,
    extensions: [
      { name: 'basicConstraints', cA: true, critical: true },
      { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    ],
  })
  const keys = forgeKeys()
  const cert = certificate({
    serial: '02',
    subject: 'localhost',
    keys,
    issuer: { cert: ca, keys: caKeys },
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true },
      { name: 'extKeyUsage', serverAuth: true },
      {
        name: 'subjectAltName',
        altNames: [
          { type: 2, value: 'localhost' },
          { type: 7, ip: '127.0.0.1' },
        ],
      },
    ],
  })
  return { ca: forge.pki.certificateToPem(ca), cert: forge.pki.certificateToPem(cert), key: keys.pem }
}

/** An answer APNs gives: 200, or an error status with its reason (and, for 410, a timestamp in ms). */
export interface ApnsAnswer {
  status: number
  reason?: string
  timestamp?: number
}

/** A request as the server took it, and what it answered. */
export interface ApnsRequestSeen {
  token: string
  apnsId: string
  headers: Record<string, string>
  payload: Record<string, unknown>
  bytes: number
  /** The JWT's iat. */
  issuedAt: number
  jwt: string
  answer: ApnsAnswer
}

export interface TestApnsServer {
  /** https://localhost:<port> */
  origin: string
  /** The CA's certificate, PEM: what a client must trust. */
  ca: string
  /** Writes the CA's certificate to a file (for NODE_EXTRA_CA_CERTS) and answers its path. */
  caFile(): Promise<string>
  topic: string
  /** Every request taken, in order, with the answer it gets (held or not). */
  requests: ApnsRequestSeen[]
  /** Those taken with 200: delivered, as APNs would, even when the sender never heard the answer. */
  delivered(): ApnsRequestSeen[]
  /** How many were delivered (kept count of even when requests are not recorded). */
  deliveredCount(): number
  /** The next requests for `token` get these answers, in order; then 200 again. */
  answerNext(token: string, ...answers: ApnsAnswer[]): void
  /** Requests are taken (and recorded) but not answered until `release()`. */
  hold(): void
  release(): void
  /** Requests taken and not answered (held). */
  pending(): number
  /** Closes every connection, as APNs does to idle ones (GOAWAY). */
  disconnect(): void
  /** Resolves once `done()` holds (checked after every request), or fails after `timeoutMs`. */
  until(done: () => boolean, timeoutMs?: number): Promise<void>
  close(): Promise<void>
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/
const TOKEN_PATH = /^\/3\/device\/([0-9a-fA-F]+)$/

export async function startTestApnsServer(opts: {
  key: TestSigningKey
  topic?: string
  /** Keep every request in `requests` (off for a long benchmark: only counted). */
  record?: boolean
}): Promise<TestApnsServer> {
  const topic = opts.topic ?? 'blue.catbird.test'
  const tls = throwawayTls()
  const requests: ApnsRequestSeen[] = []
  let delivered = 0
  const scripted = new Map<string, ApnsAnswer[]>()
  const held: Array<() => void> = []
  let holding = false
  const waiters = new Set<() => void>()
  const changed = () => {
    for (const waiter of waiters) waiter()
  }

  /** What APNs says of a request's headers and token, or undefined when they are right. */
  async function refusal(headers: http2.IncomingHttpHeaders, body: Buffer): Promise<ApnsAnswer | undefined> {
    if (headers[':method'] !== 'POST') return { status: 405, reason: 'MethodNotAllowed' }
    if (!TOKEN_PATH.test(String(headers[':path']))) return { status: 404, reason: 'BadPath' }
    const auth = String(headers.authorization ?? '')
    if (!auth.startsWith('bearer ')) return { status: 403, reason: 'MissingProviderToken' }
    const jwt = auth.slice('bearer '.length)
    try {
      if (decodeProtectedHeader(jwt).kid !== opts.key.keyId) return { status: 403, reason: 'InvalidProviderToken' }
      const { payload } = await jwtVerify(jwt, opts.key.publicKey, { algorithms: ['ES256'], issuer: opts.key.teamId })
      if (typeof payload.iat !== 'number') return { status: 403, reason: 'InvalidProviderToken' }
      if (payload.iat < Date.now() / 1000 - 3600) return { status: 403, reason: 'ExpiredProviderToken' }
    } catch {
      return { status: 403, reason: 'InvalidProviderToken' }
    }
    if (headers['apns-topic'] === undefined) return { status: 400, reason: 'MissingTopic' }
    if (headers['apns-topic'] !== topic) return { status: 400, reason: 'TopicDisallowed' }
    const pushType = headers['apns-push-type']
    if (pushType !== 'alert' && pushType !== 'background') return { status: 400, reason: 'InvalidPushType' }
    const priority = headers['apns-priority']
    if (priority !== '10' && priority !== '5') return { status: 400, reason: 'BadPriority' }
    if (pushType === 'background' && priority !== '5') return { status: 400, reason: 'BadPriority' }
    const id = headers['apns-id']
    if (id !== undefined && !UUID.test(String(id))) return { status: 400, reason: 'BadMessageId' }
    if (!/^\d+$/.test(String(headers['apns-expiration'] ?? '0'))) return { status: 400, reason: 'BadExpirationDate' }
    const collapseId = headers['apns-collapse-id']
    if (collapseId !== undefined && Buffer.byteLength(String(collapseId)) > 64) {
      return { status: 400, reason: 'BadCollapseId' }
    }
    if (body.length === 0) return { status: 400, reason: 'PayloadEmpty' }
    if (body.length > 4096) return { status: 413, reason: 'PayloadTooLarge' }
    return undefined
  }

  const server = http2.createSecureServer({ cert: tls.cert, key: tls.key, allowHTTP1: false })
  server.on('stream', (stream, headers) => {
    const chunks: Buffer[] = []
    stream.on('data', (chunk: Buffer) => chunks.push(chunk))
    stream.on('error', () => undefined)
    stream.on('end', () => {
      void (async () => {
        const body = Buffer.concat(chunks)
        const token = TOKEN_PATH.exec(String(headers[':path']))?.[1] ?? ''
        const apnsId = String(headers['apns-id'] ?? randomUUID())
        const refused = await refusal(headers, body)
        const answer: ApnsAnswer = refused ?? scripted.get(token)?.shift() ?? { status: 200 }
        const auth = String(headers.authorization ?? '')
        let issuedAt = 0
        let payload: Record<string, unknown> = {}
        try {
          issuedAt = Number(JSON.parse(Buffer.from(auth.split('.')[1] ?? '', 'base64url').toString()).iat)
          payload = JSON.parse(body.toString('utf8')) as Record<string, unknown>
        } catch {
          // Refused already, or recorded as empty: the test says what it expected.
        }
        // Taken as APNs takes it: what it answers 200 is delivered, whether the answer reaches the sender or not.
        if (answer.status === 200) delivered++
        if (opts.record !== false)
          requests.push({
            token,
            apnsId,
            headers: Object.fromEntries(
              Object.entries(headers)
                .filter(([k]) => k.startsWith('apns-'))
                .map(([k, v]) => [k, String(v)]),
            ),
            payload,
            bytes: body.length,
            issuedAt,
            jwt: auth.slice('bearer '.length),
            answer,
          })
        const respond = () => {
          if (stream.destroyed || stream.closed) return
          stream.respond({ ':status': answer.status, 'apns-id': apnsId })
          const { status: _status, ...json } = answer
          stream.end(answer.status === 200 ? undefined : JSON.stringify(json))
        }
        if (holding) held.push(respond)
        else respond()
        changed()
      })()
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const origin = `https://localhost:${(server.address() as AddressInfo).port}`
  const sessions = new Set<http2.ServerHttp2Session>()
  server.on('session', (session) => {
    sessions.add(session)
    session.on('close', () => sessions.delete(session))
  })

  return {
    origin,
    ca: tls.ca,
    topic,
    requests,
    delivered: () => requests.filter((r) => r.answer.status === 200),
    deliveredCount: () => delivered,
    async caFile() {
      const file = path.join(os.tmpdir(), `catbird-apns-ca-${process.pid}-${Date.now()}.pem`)
      await writeFile(file, tls.ca)
      return file
    },
    answerNext(token, ...answers) {
      scripted.set(token, [...(scripted.get(token) ?? []), ...answers])
    },
    hold() {
      holding = true
    },
    release() {
      holding = false
      for (const respond of held.splice(0)) respond()
    },
    pending: () => held.length,
    disconnect() {
      for (const session of sessions) session.close()
    },
    until(done, timeoutMs = 20_000) {
      if (done()) return Promise.resolve()
      return new Promise((resolve, reject) => {
        const waiter = () => {
          if (!done()) return
          clearTimeout(timer)
          waiters.delete(waiter)
          resolve()
        }
        const timer = setTimeout(() => {
          waiters.delete(waiter)
          reject(new Error(`APNs test server: not there after ${timeoutMs} ms (${requests.length} requests answered)`))
        }, timeoutMs)
        waiters.add(waiter)
      })
    },
    async close() {
      held.splice(0)
      for (const session of sessions) session.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}
