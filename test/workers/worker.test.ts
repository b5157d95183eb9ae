import { describe, expect, it } from 'vitest'
import { Metrics } from '../../src/metrics.js'
import { startWorker } from '../../src/workers/worker.js'
import { captureLogs } from '../helpers/index.js'

const outcomes = async (metrics: Metrics) =>
  Object.fromEntries((await metrics.workerRuns.get()).values.map((v) => [v.labels.outcome, v.value]))

describe('worker framework', () => {
  it('never overlaps passes: a pass requested while one runs joins it', async () => {
    const { logger: log } = captureLogs()
    let running = 0
    let maxRunning = 0
    let passes = 0
    let release!: () => void
    const gate = new Promise<void>((resolve) => (release = resolve))
    const worker = startWorker(
      {
        name: 'test',
        intervalMs: 60_000,
        run: async () => {
          running++
          maxRunning = Math.max(maxRunning, running)
          passes++
          await gate
          running--
          return {}
        },
      },
      { log, metrics: new Metrics() },
    )
    const first = worker.runOnce()
    const second = worker.runOnce()
    expect(second).toBe(first)
    release()
    await Promise.all([first, second])
    expect(maxRunning).toBe(1)
    expect(passes).toBe(1)
    await worker.runOnce()
    expect(passes).toBe(2)
    await worker.stop()
  })

  it('logs and counts a failing pass without throwing, and keeps running', async () => {
    const { logger: log, lines } = captureLogs()
    const metrics = new Metrics()
    let fail = true
    const worker = startWorker(
      {
        name: 'flaky',
        intervalMs: 60_000,
        run: async () => {
          if (fail) throw new Error('database went away')
          return { done: 1 }
        },
      },
      { log, metrics },
    )
    await worker.runOnce()
    fail = false
    await worker.runOnce()
    await worker.stop()
    expect(await outcomes(metrics)).toEqual({ error: 1, ok: 1 })
    expect(lines.find((l) => l.level === 50)).toMatchObject({ worker: 'flaky', msg: 'flaky pass failed' })
    expect(lines.find((l) => l.msg === 'flaky pass done')).toMatchObject({ done: 1 })
  })

  it('runs on its interval without keeping the process alive, and stop() waits for the pass in progress', async () => {
    const { logger: log } = captureLogs()
    let passes = 0
    let finished = false
    const worker = startWorker(
      {
        name: 'ticker',
        intervalMs: 20,
        run: async () => {
          passes++
          await new Promise((r) => setTimeout(r, 30))
          finished = true
          return {}
        },
      },
      { log, metrics: new Metrics() },
    )
    while (passes === 0) await new Promise((r) => setTimeout(r, 5))
    await worker.stop()
    expect(finished).toBe(true)
    const after = passes
    await new Promise((r) => setTimeout(r, 60))
    expect(passes).toBe(after)
    await worker.runOnce()
    expect(passes).toBe(after)
  })
})
