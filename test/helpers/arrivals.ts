/**
 * What arrives over time (events of a stream, frames of a socket), and waits
 * for what has arrived to satisfy a predicate: checked on every arrival, and
 * refused once nothing more can arrive.
 */
export class Arrivals<T> {
  readonly items: T[] = []
  private ended = false
  private readonly checks = new Set<() => void>()

  constructor(private readonly describe: (items: T[]) => string = (items) => `${items.length} items`) {}

  push(item: T): void {
    this.items.push(item)
    this.changed()
  }

  /** Something a predicate may look at changed (beside the items): checks the waits again. */
  changed(): void {
    this.checks.forEach((check) => check())
  }

  /** Nothing more will arrive: waits still unsatisfied fail at once. */
  end(): void {
    this.ended = true
    this.changed()
  }

  /** Resolves once `predicate` holds for what has arrived; rejects when it ended first, or after `timeoutMs`. */
  waitFor(predicate: (items: T[]) => boolean, timeoutMs = 10_000): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const check = () => {
        if (predicate(this.items)) {
          cleanup()
          resolve()
        } else if (this.ended) {
          cleanup()
          reject(new Error(`ended after ${this.describe(this.items)}`))
        }
      }
      const timer = setTimeout(() => {
        cleanup()
        reject(new Error(`timed out with ${this.describe(this.items)}`))
      }, timeoutMs)
      const cleanup = () => {
        clearTimeout(timer)
        this.checks.delete(check)
      }
      this.checks.add(check)
      check()
    })
  }
}
