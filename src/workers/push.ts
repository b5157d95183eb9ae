/**
 * The push worker: sends the pushes the writes queued (src/services/pushQueue.ts)
 * to APNs, each to every device concerned, and the ones APNs could not take
 * yet again later, with backoff and jitter. Every instance runs one; they
 * share the queue by claims, so none sends what another holds.
 */
import { randomUUID } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyBaseLogger } from 'fastify'
import { ConfigError, pushConfigured, type Config } from '../config.js'
import type { AppContext } from '../context.js'
import {
  APNS_PRODUCTION_ORIGIN,
  APNS_SANDBOX_ORIGIN,
  ApnsClient,
  readSigningKey,
  verdictOf,
  type ApnsNotification,
  type ApnsOptions,
  type ApnsOutcome,
} from '../push/apns.js'
import {
  apnsIdOf,
  buildPush,
  MAX_PUSHED_CIPHERTEXT_BYTES,
  type PayloadOptions,
  type PushContent,
} from '../push/payload.js'
import {
  claimDueRetries,
  claimQueuedPushes,
  finishClaimedPushes,
  finishClaimedRetries,
  pushTargets,
  type DeadToken,
  type PushTarget,
  type PushToRetry,
  type RetryKey,
} from '../services/pushQueue.js'
import type { RunningWorker } from './worker.js'

/** Queued pushes one pass claims (each goes to all its devices). */
const QUEUED_BATCH = 50
/** Retries one pass claims (one device each). */
const RETRY_BATCH = 500
const MAX_RETRY_DELAY_MS = 10 * 60_000

/** Push as configured. */
export interface PushSetup {
  apns: Omit<ApnsOptions, 'ca' | 'now'>
  payload: PayloadOptions
  commits: boolean
  ttlSeconds: number
  concurrency: number
  pollIntervalMs: number
  leaseSeconds: number
  retryBaseMs: number
}

/**
 * Push as configured, with its signing key read; undefined when push is
 * off. Throws a ConfigError when the key cannot be used, so that start-up
 * stops before it listens.
 */
export function pushSetup(config: Config): PushSetup | undefined {
  if (!pushConfigured(config)) return undefined
  const file = config.APNS_KEY_FILE as string
  let signingKey
  try {
    signingKey = readSigningKey(readFileSync(file, 'utf8'))
  } catch (err) {
    throw new ConfigError(
      `Invalid configuration:\n  APNS_KEY_FILE: ${file} is not a usable APNs signing key (${(err as Error).message})`,
    )
  }
  return {
    apns: {
      signingKey,
      keyId: config.APNS_KEY_ID as string,
      teamId: config.APNS_TEAM_ID as string,
      topic: config.APNS_TOPIC as string,
      origin: config.APNS_ENDPOINT ?? (config.APNS_PRODUCTION ? APNS_PRODUCTION_ORIGIN : APNS_SANDBOX_ORIGIN),
      requestTimeoutMs: (config.PUSH_LEASE_SECONDS * 1000) / 2,
    },
    payload: { mode: config.PUSH_PAYLOAD, recipientKey: config.PUSH_RECIPIENT },
    commits: config.PUSH_COMMITS,
    ttlSeconds: config.PUSH_TTL_SECONDS,
    concurrency: config.PUSH_CONCURRENCY,
    pollIntervalMs: config.PUSH_POLL_INTERVAL_MS,
    leaseSeconds: config.PUSH_LEASE_SECONDS,
    retryBaseMs: config.PUSH_RETRY_BASE_MS,
  }
}

/** What start-up says of push: whether it is on, and where pushes go. */
export function pushAnnouncement(setup: PushSetup | undefined): [Record<string, unknown>, string] {
  if (!setup) {
    return [{}, 'push notifications off (set APNS_KEY_FILE, APNS_KEY_ID, APNS_TEAM_ID and APNS_TOPIC to turn them on)']
  }
  const { origin, topic } = setup.apns
  return [
    { apns: origin, topic, payload: setup.payload.mode, commits: setup.commits },
    `push notifications on: APNs at ${origin} for ${topic}`,
  ]
}

/** Waits before attempt `attempts + 1`: doubling from the base, capped, with half of it random. */
function backoffMs(attempts: number, baseMs: number): number {
  const ceiling = Math.min(MAX_RETRY_DELAY_MS, baseMs * 2 ** (attempts - 1))
  return ceiling / 2 + Math.random() * (ceiling / 2)
}

/** Runs `fn` on every item, at most `limit` at once. */
async function eachAtMost<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0
  const lane = async () => {
    while (next < items.length) await fn(items[next++] as T)
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane))
}

/** APNs's reason, as a metric label: Apple's names only (a word), anything else `other`. */
const reasonLabel = (outcome: ApnsOutcome) =>
  outcome.reason && /^[A-Za-z]{1,40}$/.test(outcome.reason)
    ? outcome.reason
    : outcome.status
      ? String(outcome.status)
      : 'no answer'

const contentOf = (t: PushTarget): PushContent | undefined => {
  const base = { convoId: t.convoId, groupId: t.groupId, recipient: t.userDid }
  if (t.kind === 'welcome') return { ...base, kind: 'welcome' }
  if (!t.message) return undefined
  return {
    ...base,
    kind: t.kind,
    messageId: t.message.id,
    seq: t.seq,
    epoch: t.message.epoch,
    ciphertext: t.message.ciphertext ?? undefined,
  }
}

export class PushWorker implements RunningWorker {
  readonly name = 'push'
  private readonly apns: ApnsClient
  private readonly log: FastifyBaseLogger
  private stopped = false
  private readonly idle = new AbortController()
  private loop: Promise<void> | undefined

  constructor(
    private readonly ctx: Pick<AppContext, 'db' | 'metrics'>,
    log: FastifyBaseLogger,
    private readonly setup: PushSetup,
    opts: { ca?: string[] | undefined } = {},
  ) {
    this.apns = new ApnsClient({ ...setup.apns, ca: opts.ca })
    this.log = log.child({ worker: 'push' })
  }

  /** Sends what is queued, then looks again every poll interval while nothing is. */
  start(): this {
    this.loop ??= (async () => {
      while (!this.stopped) {
        const busy = await this.runPass()
        if (!busy && !this.stopped) {
          await sleep(this.setup.pollIntervalMs, undefined, { signal: this.idle.signal }).catch(() => undefined)
        }
      }
    })()
    return this
  }

  /** One pass now: queued pushes, then due retries. */
  async runOnce(): Promise<void> {
    await this.runPass()
  }

  async stop(): Promise<void> {
    this.stopped = true
    this.idle.abort()
    await this.loop
    this.apns.close()
  }

  /** Whether it found work (there may be more). Errors are logged and counted; the pushes stay claimed until their lease runs out. */
  private async runPass(): Promise<boolean> {
    try {
      const queued = await this.pushQueued()
      const retried = await this.pushRetries()
      if (queued + retried > 0) this.ctx.metrics.workerRuns.inc({ worker: this.name, outcome: 'ok' })
      return queued + retried > 0
    } catch (err) {
      this.ctx.metrics.workerRuns.inc({ worker: this.name, outcome: 'error' })
      this.log.warn({ err }, 'push pass failed; its pushes are sent again when their lease runs out')
      return false
    }
  }

  private claim(limit: number) {
    return { claimId: randomUUID(), leaseSeconds: this.setup.leaseSeconds, limit }
  }

  /** Sends one notification unless it expired; answers its outcome, or undefined for an expired one (dropped). */
  private async send(notification: ApnsNotification): Promise<ApnsOutcome | undefined> {
    if (Date.now() >= notification.expiration * 1000) {
      this.ctx.metrics.pushDropped.inc({ reason: 'expired' })
      return undefined
    }
    return this.apns.send(notification)
  }

  private deadToken(t: { userDid: string; deviceId: string; token: string }, outcome: ApnsOutcome): DeadToken {
    return {
      ...t,
      reason: outcome.reason ?? String(outcome.status),
      ...(outcome.status === 410 && outcome.timestamp !== undefined
        ? { invalidSince: new Date(outcome.timestamp) }
        : {}),
    }
  }

  private dropped(outcome: ApnsOutcome, who: { userDid: string; deviceId: string }): void {
    this.ctx.metrics.pushDropped.inc({ reason: reasonLabel(outcome) })
    this.log.warn({ ...who, status: outcome.status, reason: outcome.reason }, 'APNs refused a push; dropped')
  }

  private countCleared(cleared: DeadToken[]): void {
    for (const t of cleared) {
      this.ctx.metrics.pushTokensCleared.inc({ reason: reasonLabel({ status: 0, reason: t.reason }) })
      this.log.info(
        { userDid: t.userDid, deviceId: t.deviceId, reason: t.reason },
        'push token no longer valid; forgotten',
      )
    }
  }

  private async pushQueued(): Promise<number> {
    const claim = this.claim(QUEUED_BATCH)
    const claimed = await claimQueuedPushes(this.ctx.db, claim)
    if (claimed.length === 0) return 0
    const targets = await pushTargets(this.ctx.db, claimed, { maxCiphertextBytes: MAX_PUSHED_CIPHERTEXT_BYTES })
    const retries: PushToRetry[] = []
    const dead: DeadToken[] = []
    await eachAtMost(targets, this.setup.concurrency, async (target) => {
      const content = contentOf(target)
      if (!content) return
      const built = buildPush(content, this.setup.payload)
      const notification: ApnsNotification = {
        ...built,
        token: target.token,
        apnsId: apnsIdOf(target),
        expiration: Math.floor(target.createdAt.getTime() / 1000) + this.setup.ttlSeconds,
      }
      const outcome = await this.send(notification)
      if (!outcome) return
      const who = { userDid: target.userDid, deviceId: target.deviceId }
      switch (verdictOf(outcome)) {
        case 'sent':
          return void this.ctx.metrics.pushSent.inc({ kind: target.kind })
        case 'retry':
          this.ctx.metrics.pushRetried.inc({ status: String(outcome.status) })
          return void retries.push({
            ...who,
            apnsId: notification.apnsId,
            pushType: notification.pushType,
            priority: notification.priority,
            collapseId: notification.collapseId ?? null,
            payload: notification.payload,
            expiresAt: new Date(notification.expiration * 1000),
            attempts: 1,
            delayMs: backoffMs(1, this.setup.retryBaseMs),
            lastError: `${outcome.status} ${outcome.reason ?? ''}`.trim(),
          })
        case 'clear-token':
          return void dead.push(this.deadToken({ ...who, token: target.token }, outcome))
        case 'drop':
          return this.dropped(outcome, who)
      }
    })
    this.countCleared(await finishClaimedPushes(this.ctx.db, { claimId: claim.claimId, retries, dead }))
    return claimed.length
  }

  private async pushRetries(): Promise<number> {
    const claim = this.claim(RETRY_BATCH)
    const claimed = await claimDueRetries(this.ctx.db, claim)
    if (claimed.length === 0) return 0
    const done: RetryKey[] = []
    const again: Array<RetryKey & { delayMs: number; lastError: string }> = []
    const dead: DeadToken[] = []
    await eachAtMost(claimed, this.setup.concurrency, async (retry) => {
      const key = { userDid: retry.user_did, deviceId: retry.device_id, apnsId: retry.apns_id }
      const outcome = await this.send({
        token: retry.token,
        apnsId: retry.apns_id,
        pushType: retry.push_type as ApnsNotification['pushType'],
        priority: retry.priority as ApnsNotification['priority'],
        collapseId: retry.collapse_id ?? undefined,
        payload: retry.payload,
        expiration: Math.floor(retry.expires_at.getTime() / 1000),
      })
      if (!outcome) return void done.push(key)
      switch (verdictOf(outcome)) {
        case 'sent':
          this.ctx.metrics.pushSent.inc({ kind: 'retry' })
          return void done.push(key)
        case 'retry':
          this.ctx.metrics.pushRetried.inc({ status: String(outcome.status) })
          return void again.push({
            ...key,
            delayMs: backoffMs(retry.attempts + 1, this.setup.retryBaseMs),
            lastError: `${outcome.status} ${outcome.reason ?? ''}`.trim(),
          })
        case 'clear-token':
          dead.push(this.deadToken({ userDid: key.userDid, deviceId: key.deviceId, token: retry.token }, outcome))
          return void done.push(key)
        case 'drop':
          this.dropped(outcome, key)
          return void done.push(key)
      }
    })
    this.countCleared(await finishClaimedRetries(this.ctx.db, { claimId: claim.claimId, done, again, dead }))
    return claimed.length
  }
}
