import autocannon from 'autocannon'
import type { HttpRequest } from './client.js'
import { machineCpu, type CpuMeter } from './cpu.js'

/** One measured run of one variant. */
export interface Run {
  /** Successful requests (or calls). */
  requests: number
  seconds: number
  rps: number
  /** Latency percentiles in milliseconds. */
  p50: number
  p99: number
  /** Share of the machine's CPU time that was busy (all processes, all cores). */
  machineBusy: number
  /** CPU time per request, in microseconds, of each process taking part (NaN: not measured). */
  cpu: Record<keyof CpuMeters, number>
}

export interface CpuMeters {
  /** The Node process serving the requests (the bench itself for calls without HTTP). */
  app: CpuMeter
  postgres?: CpuMeter
  /** The bench process generating HTTP load. */
  loadGenerator?: CpuMeter
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] as number
}

const readAll = async (meters: CpuMeters) => ({
  app: await meters.app(),
  postgres: (await meters.postgres?.()) ?? Number.NaN,
  loadGenerator: (await meters.loadGenerator?.()) ?? Number.NaN,
})

/** What a load generator saw: each successful request's latency (ms), over how long it was loading. */
export interface Sample {
  latencies: number[]
  seconds: number
  /** Requests done, when the generator reports no latencies (pgbench). */
  count?: number
}

/** Runs `work` and measures it. */
export async function measure(meters: CpuMeters, work: () => Promise<Sample>): Promise<Run> {
  const machineBefore = machineCpu()
  const before = await readAll(meters)
  const { latencies, seconds, count = latencies.length } = await work()
  const after = await readAll(meters)
  const machineAfter = machineCpu()
  latencies.sort((a, b) => a - b)
  const perRequest = (key: keyof CpuMeters) => (after[key] - before[key]) / Math.max(1, count)
  return {
    requests: count,
    seconds,
    rps: count / seconds,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    machineBusy: (machineAfter.busy - machineBefore.busy) / Math.max(1, machineAfter.total - machineBefore.total),
    cpu: { app: perRequest('app'), postgres: perRequest('postgres'), loadGenerator: perRequest('loadGenerator') },
  }
}

export interface HttpLoad {
  url: string
  connections: number
  /** Run for this long, or until `until` settles, whichever is first. */
  seconds: number
  until?: Promise<unknown>
  /** Or stop after exactly this many requests. */
  amount?: number
  /** The next request to send (called once per request). */
  next: () => HttpRequest
  /** Sees every successful response; throwing marks the run as failed. */
  check?: (body: string, headers: Record<string, unknown>) => void
}

/** A `next` handing out `items` in turn, round and round. */
export const cycle = <T>(items: T[]) => {
  let i = 0
  return () => items[i++ % items.length] as T
}

/** How often autocannon looks whether to stop (its default, a second, would round every run up). */
const STOP_CHECK_MS = 20

/**
 * Drives the server with autocannon. Any failed request fails the run: every
 * figure is of correct work. A run that `until` ends counts the responses
 * until then; the rest until the last response.
 */
export function httpLoad(load: HttpLoad): Promise<Sample> {
  const latencies: number[] = []
  let failure: string | undefined
  const started = performance.now()
  let lastResponse = started
  let ended: number | undefined
  return new Promise((resolve, reject) => {
    const instance = autocannon(
      {
        url: load.url,
        connections: load.connections,
        duration: load.seconds,
        sampleInt: STOP_CHECK_MS,
        ...(load.amount !== undefined ? { amount: load.amount } : {}),
        requests: [
          {
            setupRequest: (request) => ({ ...request, ...load.next() }),
            onResponse: (status, body, _context, headers) => {
              if (status !== 200) {
                failure ??= `HTTP ${status}: ${body.slice(0, 500)}`
                return
              }
              try {
                load.check?.(body, headers ?? {})
              } catch (err) {
                failure ??= err instanceof Error ? err.message : String(err)
              }
            },
          },
        ],
      },
      (err: unknown, result: autocannon.Result) => {
        if (err) return reject(err instanceof Error ? err : new Error(String(err)))
        if (failure) return reject(new Error(failure))
        if (result.errors > 0) return reject(new Error(`${result.errors} connection errors or timeouts`))
        resolve({ latencies, seconds: ((ended ?? lastResponse) - started) / 1000 })
      },
    )
    instance.on('response', (_client, status, _bytes, responseTime) => {
      if (status !== 200 || ended !== undefined) return
      latencies.push(responseTime)
      lastResponse = performance.now()
    })
    void load.until?.finally(() => {
      ended = performance.now()
      instance.stop()
    })
  })
}

/** Several loads run side by side, as one: every latency, over the longest run. */
export async function httpLoads(loads: HttpLoad[]): Promise<Sample> {
  const samples = await Promise.all(loads.map(httpLoad))
  return { latencies: samples.flatMap((s) => s.latencies), seconds: Math.max(...samples.map((s) => s.seconds)) }
}
