/**
 * `npm run migrate -- up|down|status`: for operators who run migrations as a
 * separate step. Uses DATABASE_URL and DATABASE_PASSWORD (the server runs `up`
 * itself at start-up). In the Docker image it is compiled: `npm run migrate` runs
 * `node dist/db/migrate-cli.js`, with no dev dependencies.
 */
import { databaseUrl, loadConfig } from '../config.js'
import { createDatabase } from './index.js'
import { createMigrator, migrateDown, migrateToLatest } from './migrator.js'

async function main(command: string | undefined): Promise<void> {
  const url = databaseUrl(loadConfig())
  if (!url) throw new Error('DATABASE_URL is required (the embedded database migrates itself on npm start)')
  const database = createDatabase({ url, poolSize: 1 })
  try {
    switch (command) {
      case 'up': {
        const applied = await migrateToLatest(database.db)
        console.log(applied.length ? `applied: ${applied.join(', ')}` : 'already up to date')
        break
      }
      case 'down': {
        const reverted = await migrateDown(database.db)
        console.log(reverted.length ? `reverted: ${reverted.join(', ')}` : 'nothing to revert')
        break
      }
      case 'status': {
        for (const m of await createMigrator(database.db).getMigrations()) {
          console.log(`${m.executedAt ? `applied ${m.executedAt.toISOString()}` : 'pending'.padEnd(32)}  ${m.name}`)
        }
        break
      }
      default:
        throw new Error('usage: npm run migrate -- up|down|status')
    }
  } finally {
    await database.close()
  }
}

main(process.argv[2]).catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : String(err))
  process.exit(1)
})
