import { Migrator, type Kysely, type MigrationResultSet } from 'kysely'
import { migrations } from './migrations/index.js'

export function createMigrator<T>(db: Kysely<T>): Migrator {
  return new Migrator({
    db: db as unknown as Kysely<unknown>,
    provider: { getMigrations: async () => migrations },
  })
}

export class MigrationError extends Error {
  override name = 'MigrationError'
}

function unwrap({ error, results }: MigrationResultSet): string[] {
  if (error) {
    const failed = results?.find((r) => r.status === 'Error')?.migrationName
    const reason = error instanceof Error ? error.message : String(error)
    throw new MigrationError(failed ? `migration ${failed} failed: ${reason}` : `migrations failed: ${reason}`, {
      cause: error,
    })
  }
  return (results ?? []).map((r) => r.migrationName)
}

/**
 * Brings the schema to the latest version. Kysely takes a lock, so several
 * instances starting together are safe, and it refuses a database that has
 * run migrations this build does not know (a newer version wrote it).
 */
export async function migrateToLatest<T>(db: Kysely<T>): Promise<string[]> {
  return unwrap(await createMigrator(db).migrateToLatest())
}

export async function migrateDown<T>(db: Kysely<T>): Promise<string[]> {
  return unwrap(await createMigrator(db).migrateDown())
}
