import { XrpcClientError } from './errors.js'

export interface RetryOptions {
  /** Ceiling of the first backoff; it doubles with every attempt. Default 250 ms. */
  baseDelayMs: number
  /** Largest backoff ceiling. Default 30 s. A server's Retry-After is honoured even when longer. */
  maxDelayMs: number
  /** Attempts per call, the first included. Default 8. */
  maxAttempts: number
  /** Waits between attempts; replace it to observe or skip the waits. */
  sleep: (ms: number) => Promise<void>
  /** Uniform in [0, 1): the jitter source. */
  random: () => number
  /** Milliseconds since the epoch: the clock an HTTP-date Retry-After is read against. */
  now: () => number
}

export const defaultRetryOptions: RetryOptions = {
  baseDelayMs: 250,
  maxDelayMs: 30_000,
  maxAttempts: 8,
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
  random: Math.random,
  now: Date.now,
}

/** Retry-After in milliseconds: delay-seconds or an HTTP date (RFC 9110 §10.2.3). */
export function retryAfterMs(headers: Headers, now: number): number | undefined {
  const value = headers.get('retry-after')?.trim()
  if (!value) return undefined
  if (/^\d+$/.test(value)) return Number(value) * 1000
  const date = Date.parse(value)
  return Number.isNaN(date) ? undefined : Math.max(0, date - now)
}

/**
 * How long to wait before attempt `attempt + 1`: what the server asked for,
 * or else exponential backoff with full jitter, so clients that failed
 * together do not retry together.
 */
export function retryDelayMs(err: XrpcClientError, attempt: number, opts: RetryOptions): number {
  const asked = retryAfterMs(err.headers, opts.now())
  if (asked !== undefined) return asked
  const ceiling = Math.min(opts.maxDelayMs, opts.baseDelayMs * 2 ** (attempt - 1))
  return Math.floor(opts.random() * ceiling)
}

/** Runs `attempt` until it succeeds, fails for good, or runs out of attempts (then its last error). */
export async function withRetry<T>(attempt: () => Promise<T>, opts: RetryOptions): Promise<T> {
  for (let n = 1; ; n++) {
    try {
      return await attempt()
    } catch (err) {
      if (!(err instanceof XrpcClientError) || !err.retryable || n >= opts.maxAttempts) throw err
      await opts.sleep(retryDelayMs(err, n, opts))
    }
  }
}
