/**
 * `npm run admin -- <command>`: what an operator does to accounts and asks
 * of the server, on the database (DATABASE_URL and DATABASE_PASSWORD, as
 * `npm run migrate`). Compiled with the server: in the Docker image it runs
 * `node dist/admin-cli.js`, with no dev dependencies. Answers are JSON.
 *
 *   takedown <did> [--reason <text>]   refuse the account's calls, withdraw its key packages
 *   restore <did>                      lift a takedown
 *   lookup <did>                       its devices, conversations and key packages (counts; no content)
 *   stats                              what the server holds, counted
 */
import { parseArgs } from 'node:util'
import { databaseUrl, loadConfig } from './config.js'
import { createDatabase } from './db/index.js'
import { lookUp, restore, serverStats, takeDown } from './services/accounts.js'

const USAGE = `usage: npm run admin -- takedown <did> [--reason <text>] | restore <did> | lookup <did> | stats`

const DID = /^did:[a-z]+:[a-zA-Z0-9._:%-]+$/

function didArgument(value: string | undefined): string {
  if (!value || !DID.test(value)) throw new Error(`a DID is required (did:plc:..., did:web:...)\n${USAGE}`)
  return value
}

async function main(argv: string[]): Promise<void> {
  const { positionals, values } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { reason: { type: 'string' } },
  })
  const [command, subject, ...extra] = positionals
  if (extra.length > 0 || !command) throw new Error(USAGE)
  const config = loadConfig()
  const url = databaseUrl(config)
  if (!url) throw new Error('DATABASE_URL is required: the database of the server to administer')
  const database = createDatabase({ url, poolSize: 2 })
  const { db } = database
  const refresh = `takes effect on every instance within ${config.TAKEDOWN_REFRESH_SECONDS} s (TAKEDOWN_REFRESH_SECONDS)`
  try {
    switch (command) {
      case 'takedown': {
        const did = didArgument(subject)
        const withdrawnKeyPackages = await takeDown(db, { did, reason: values.reason })
        console.log(JSON.stringify({ did, takenDown: true, withdrawnKeyPackages, note: refresh }, null, 2))
        break
      }
      case 'restore': {
        const did = didArgument(subject)
        const wasTakenDown = await restore(db, did)
        console.log(
          JSON.stringify({ did, restored: wasTakenDown, ...(wasTakenDown ? { note: refresh } : {}) }, null, 2),
        )
        break
      }
      case 'lookup':
        console.log(JSON.stringify(await lookUp(db, didArgument(subject)), null, 2))
        break
      case 'stats':
        if (subject !== undefined) throw new Error(USAGE)
        console.log(JSON.stringify(await serverStats(db), null, 2))
        break
      default:
        throw new Error(USAGE)
    }
  } finally {
    await database.close()
  }
}

main(process.argv.slice(2)).catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : String(err))
  process.exit(1)
})
