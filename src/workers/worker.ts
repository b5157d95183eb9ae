import type { FastifyBaseLogger } from 'fastify'
import type { Metrics } from '../metrics.js'

export interface WorkerSpec {
  name: string
  intervalMs: number
  /** One bounded pass; returns what it did, for the log line. */
  run: () => Promise<Record<string, number>>
}

export interface RunningWorker {
  name: string
  /** Runs a pass now (tests, or after start-up); resolves when it ends. */
  runOnce(): Promise<void>
  /** Stops scheduling and waits for a pass in progress. */
  stop(): Promise<void>
}

/**
 * A periodic background job: one pass at a time (a slow pass delays the next
 * rather than overlapping it), errors logged and counted but never thrown,
 * and a timer that does not keep the process alive.
 */
export function startWorker(spec: WorkerSpec, deps: { log: FastifyBaseLogger; metrics: Metrics }): RunningWorker {
  const log = deps.log.child({ worker: spec.name })
  let current: Promise<void> | undefined
  let stopped = false

  const pass = async () => {
    try {
      const outcome = await spec.run()
      deps.metrics.workerRuns.inc({ worker: spec.name, outcome: 'ok' })
      log.info(outcome, `${spec.name} pass done`)
    } catch (err) {
      deps.metrics.workerRuns.inc({ worker: spec.name, outcome: 'error' })
      log.error({ err }, `${spec.name} pass failed`)
    }
  }
  const runOnce = () => {
    if (stopped) return Promise.resolve()
    current ??= pass().finally(() => {
      current = undefined
    })
    return current
  }

  const timer = setInterval(() => void runOnce(), spec.intervalMs)
  timer.unref()
  return {
    name: spec.name,
    runOnce,
    async stop() {
      stopped = true
      clearInterval(timer)
      await current
    },
  }
}
