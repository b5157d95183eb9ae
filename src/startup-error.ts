/**
 * A reason the server cannot start that the person starting it can fix: the
 * message is one sentence naming the cause and the fix, printed alone,
 * without a stack trace.
 */
export class StartupError extends Error {
  override name = 'StartupError'
}

/** Ends a failed start: a StartupError as its sentence, anything else (a bug) with its stack. */
export function exitOnStartupFailure(err: unknown): never {
  const text =
    err instanceof StartupError
      ? err.message
      : `fatal: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`
  process.stderr.write(`${text}\n`)
  process.exit(1)
}
