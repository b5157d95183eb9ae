const UNIQUE_VIOLATION = '23505'
/** What Citus reports for an error it met while moving a statement's rows between nodes. */
const INTERNAL_ERROR = 'XX000'
/** PostgreSQL's message for a unique violation (lc_messages English, as the server's default). */
const VIOLATED = /^duplicate key value violates unique constraint "([^"]+)"/

/**
 * The unique index or constraint a write violated, or undefined when `err`
 * is no unique violation. On Citus the error comes from a shard: it names
 * the shard's index (the table's name and `_<shard id>`) in its message
 * only, sometimes under XX000, and that suffix is dropped here.
 */
export function violatedUniqueKey(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null) return undefined
  const { code, constraint, message } = err as { code?: unknown; constraint?: unknown; message?: unknown }
  if (code === UNIQUE_VIOLATION && typeof constraint === 'string') return constraint
  if (code !== UNIQUE_VIOLATION && code !== INTERNAL_ERROR) return undefined
  const shardIndex = typeof message === 'string' ? VIOLATED.exec(message)?.[1] : undefined
  return shardIndex?.replace(/_\d+$/, '')
}
