import { setTimeout as sleep } from 'node:timers/promises'
import pg from 'pg'
import type { Logger } from 'pino'
import { StartupError } from '../startup-error.js'

/** PostgreSQL's answer while it starts up or shuts down: worth waiting for, unlike its other errors. */
const CANNOT_CONNECT_NOW = '57P03'
const FIRST_RETRY_MS = 250
const LONGEST_RETRY_MS = 5_000
/** Time any one attempt has to connect, even with less left to wait (or none: one attempt). */
const SHORTEST_ATTEMPT_MS = 3_000

/** Where a connection string points, for messages: host and port, never the user or password. */
function databaseHost(url: string): string {
  const parsed = new URL(url)
  const host = parsed.searchParams.get('host') ?? (decodeURIComponent(parsed.hostname) || 'localhost')
  return `${host}:${parsed.port || 5432}`
}

/** An error's cause in a few words: Node's connection errors may have only a code (an AggregateError for localhost). */
function causeOf(err: unknown): string {
  if (!(err instanceof Error)) return String(err)
  return err.message || (err as NodeJS.ErrnoException).code || err.name
}

/**
 * Waits, at start-up, until PostgreSQL at `url` accepts a connection: tries
 * again (with one log line per attempt) while it cannot be reached, up to
 * `waitMs`, then throws a StartupError naming the host and the cause. A
 * database that answers with an error (authentication, no such database)
 * will not change its mind: that stops at once.
 */
export async function waitForDatabase(url: string, waitMs: number, log: Logger): Promise<void> {
  const host = databaseHost(url)
  const deadline = Date.now() + waitMs
  let delay = FIRST_RETRY_MS
  for (let attempt = 1; ; attempt++) {
    const client = new pg.Client({
      connectionString: url,
      connectionTimeoutMillis: Math.max(deadline - Date.now(), SHORTEST_ATTEMPT_MS),
    })
    try {
      await client.connect()
      await client.end()
      return
    } catch (err) {
      await client.end().catch(() => {})
      const cause = causeOf(err)
      if (err instanceof pg.DatabaseError && err.code !== CANNOT_CONNECT_NOW) {
        throw new StartupError(`PostgreSQL at ${host} refused the connection: ${cause}; check DATABASE_URL.`)
      }
      const left = deadline - Date.now()
      if (left <= 0) {
        throw new StartupError(
          `PostgreSQL at ${host} could not be reached${waitMs > 0 ? ` in ${waitMs / 1000} s` : ''} (${cause}); check DATABASE_URL and that the database is running.`,
        )
      }
      const retryIn = Math.min(delay, left)
      log.warn(
        { host, attempt, cause },
        `PostgreSQL at ${host} cannot be reached (${cause}); trying again in ${retryIn} ms`,
      )
      await sleep(retryIn)
      delay = Math.min(delay * 2, LONGEST_RETRY_MS)
    }
  }
}
