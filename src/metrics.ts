import type pg from 'pg'
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'

export type IdempotencyOutcome = 'hit' | 'miss' | 'mismatch' | 'in_progress'

/** Everything the service exports on /metrics, in a registry of its own per app. */
export class Metrics {
  readonly registry = new Registry()

  readonly requests = new Counter({
    name: 'xrpc_requests_total',
    help: 'XRPC requests answered, by method and HTTP status.',
    labelNames: ['nsid', 'status'] as const,
    registers: [this.registry],
  })

  readonly requestDuration = new Histogram({
    name: 'xrpc_request_duration_seconds',
    help: 'Time to answer an XRPC request, by method and HTTP status.',
    labelNames: ['nsid', 'status'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [this.registry],
  })

  readonly idempotency = new Counter({
    name: 'idempotency_requests_total',
    help: 'Requests carrying an idempotency key, by outcome (hit = replayed response).',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  })

  readonly idempotencyCleanupDeleted = new Counter({
    name: 'idempotency_cleanup_deleted_total',
    help: 'Expired idempotency records deleted by the cleanup worker.',
    registers: [this.registry],
  })

  readonly retentionDeleted = new Counter({
    name: 'retention_deleted_total',
    help: 'Rows the retention worker deleted past their horizon: messages (commits included), and moderation records (reports, admin log, settled device additions).',
    labelNames: ['kind'] as const,
    registers: [this.registry],
  })

  readonly welcome = new Counter({
    name: 'welcome_events_total',
    help: 'Welcome delivery events (fetches, re-fetches within grace, confirmations, 410s, lapses, expiries).',
    labelNames: ['event'] as const,
    registers: [this.registry],
  })

  readonly lastResortHandouts = new Counter({
    name: 'key_package_last_resort_handouts_total',
    help: 'Last-resort key packages handed out: their owners had no other left and should publish fresh ones.',
    registers: [this.registry],
  })

  readonly eventHubReads = new Counter({
    name: 'event_hub_reads_total',
    help: 'Reads of new events by the event hub: whole messages while a stream is open, ids only while none is.',
    labelNames: ['kind'] as const,
    registers: [this.registry],
  })

  readonly workerRuns = new Counter({
    name: 'worker_runs_total',
    help: 'Background worker passes, by worker and outcome.',
    labelNames: ['worker', 'outcome'] as const,
    registers: [this.registry],
  })

  /** The two series of each (method, status) answered, looked up once (prom-client hashes the labels on every call). */
  private readonly requestSeries = new Map<
    string,
    { count: { inc(): void }; duration: { observe(seconds: number): void } }
  >()

  /** Counts an answered XRPC request and how long it took. */
  observeRequest(nsid: string, status: number, seconds: number): void {
    const key = `${status} ${nsid}`
    let series = this.requestSeries.get(key)
    if (!series) {
      const labels = { nsid, status: String(status) }
      series = { count: this.requests.labels(labels), duration: this.requestDuration.labels(labels) }
      this.requestSeries.set(key, series)
    }
    series.count.inc()
    series.duration.observe(seconds)
  }

  constructor() {
    const idempotency = this.idempotency
    new Gauge({
      name: 'idempotency_hit_ratio',
      help: 'Share of keyed requests answered from a stored response (retries that worked).',
      registers: [this.registry],
      async collect() {
        const values = (await idempotency.get()).values
        const count = (outcome: IdempotencyOutcome) => values.find((v) => v.labels.outcome === outcome)?.value ?? 0
        const total = count('hit') + count('miss')
        this.set(total === 0 ? 0 : count('hit') / total)
      },
    })
    collectDefaultMetrics({ register: this.registry })
  }

  /**
   * How many callers have how many key packages left, in buckets (`read`
   * counts them when scraped): a crowd in the low buckets means clients are
   * not replenishing.
   */
  observeKeyPackages(read: () => Promise<Record<string, number>>): void {
    new Gauge({
      name: 'key_packages_available_callers',
      help: 'Callers by the number of unused key packages they have left (last-resort ones not counted).',
      labelNames: ['available'] as const,
      registers: [this.registry],
      async collect() {
        for (const [bucket, callers] of Object.entries(await read())) this.set({ available: bucket }, callers)
      },
    })
  }

  /** Pool gauges read the pool when scraped. */
  observePool(pool: pg.Pool): void {
    new Gauge({
      name: 'db_pool_connections',
      help: 'Database pool connections by state.',
      labelNames: ['state'] as const,
      registers: [this.registry],
      collect() {
        this.set({ state: 'total' }, pool.totalCount)
        this.set({ state: 'idle' }, pool.idleCount)
        this.set({ state: 'in_use' }, pool.totalCount - pool.idleCount)
        this.set({ state: 'waiting' }, pool.waitingCount)
      },
    })
  }
}
