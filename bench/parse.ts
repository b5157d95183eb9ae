import { median } from './rounds.js'

export interface ParseCost {
  message: string
  bytes: number
  /** CPU time of one header read, in microseconds. */
  micros: number
}

const CALLS = 50_000
const REPEATS = 5

/**
 * What reading an MLS message header costs the server per sendMessage: the
 * production build's reader on real messages, timed in this process over
 * many calls after a warm-up (the median of a few repeats).
 */
export function measureHeaderReads(
  read: (bytes: Uint8Array) => unknown,
  samples: Array<{ message: string; bytes: Uint8Array }>,
): ParseCost[] {
  return samples.map(({ message, bytes }) => {
    for (let i = 0; i < CALLS; i++) read(bytes)
    const runs = Array.from({ length: REPEATS }, () => {
      const start = process.cpuUsage()
      for (let i = 0; i < CALLS; i++) read(bytes)
      const used = process.cpuUsage(start)
      return (used.user + used.system) / CALLS
    })
    return { message, bytes: bytes.length, micros: median(runs) }
  })
}
