import type { Run } from './load.js'

export interface Variant {
  name: string
  /** One measured run lasting about `seconds`. */
  run: (seconds: number) => Promise<Run>
}

export interface RoundsOptions {
  rounds: number
  seconds: number
  /** Length of the unmeasured first pass that warms caches, JIT and token verification. */
  warmupSeconds: number
}

export const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2
}

export type Metric = 'rps' | 'p50' | 'p99' | 'machineBusy'

export const medianOf = (runs: Run[], metric: Metric) => median(runs.map((r) => r[metric]))

/** Median over rounds of the per-round ratio a/b (runs of one round were measured back to back). */
export const ratioOf = (a: Run[], b: Run[], metric: Metric) =>
  median(a.map((run, i) => run[metric] / (b[i] as Run)[metric]))

/**
 * Runs the variants in the same order every round (A, B, A, B, ...) after
 * one warm-up pass, so slow drift of a busy machine falls on all of them alike.
 */
export async function interleave(variants: Variant[], opts: RoundsOptions): Promise<Map<string, Run[]>> {
  for (const variant of variants) await variant.run(opts.warmupSeconds)
  const runs = new Map(variants.map((v) => [v.name, [] as Run[]]))
  for (let round = 1; round <= opts.rounds; round++) {
    for (const variant of variants) {
      const run = await variant.run(opts.seconds)
      runs.get(variant.name)?.push(run)
      console.log(
        `  round ${round}/${opts.rounds} ${variant.name.padEnd(34)} ${run.rps.toFixed(0).padStart(6)} req/s` +
          `  p50 ${run.p50.toFixed(2)} ms  p99 ${run.p99.toFixed(2)} ms`,
      )
    }
  }
  return runs
}
