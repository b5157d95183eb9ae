/**
 * A reason the server cannot start that the person starting it can fix: the
 * message is one sentence naming the cause and the fix, printed alone,
 * without a stack trace.
 */
export class StartupError extends Error {
  override name = 'StartupError'
}
