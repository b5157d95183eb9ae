import { Writable } from 'node:stream'
import { pino, type Logger } from 'pino'

export interface LogCapture {
  /** Pass as startTestApp's `logger`. */
  logger: Logger
  /** Every line written, parsed. */
  lines: Array<Record<string, unknown>>
  /** Every line written, as written. */
  text(): string
  clear(): void
}

/** A JSON logger whose lines the test can read. */
export function captureLogs(level = 'info'): LogCapture {
  const lines: Array<Record<string, unknown>> = []
  let raw = ''
  const sink = new Writable({
    write(chunk, _encoding, done) {
      raw += String(chunk)
      lines.push(JSON.parse(String(chunk)) as Record<string, unknown>)
      done()
    },
  })
  return {
    logger: pino({ level }, sink),
    lines,
    text: () => raw,
    clear() {
      lines.length = 0
      raw = ''
    },
  }
}
