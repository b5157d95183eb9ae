import { randomBytes } from 'node:crypto'
import pg from 'pg'
import { inject } from 'vitest'

export interface TestDatabase {
  /** As the server reaches it (through PgBouncer when the suite runs behind it). */
  url: string
  /** Straight to PostgreSQL: what LISTEN needs behind a pooler in transaction mode. */
  directUrl: string
  drop(): Promise<void>
}

/** A fresh, migrated database of this test file's own, copied from the suite's template. */
export async function createTestDatabase(): Promise<TestDatabase> {
  const adminUrl = inject('pgAdminUrl')
  const name = `t_${randomBytes(6).toString('hex')}`
  const admin = new pg.Client(adminUrl)
  await admin.connect()
  try {
    await admin.query(`CREATE DATABASE ${name} TEMPLATE ${inject('pgTemplate')}`)
  } finally {
    await admin.end()
  }
  const at = (base: string) => {
    const url = new URL(base)
    url.pathname = `/${name}`
    return url.href
  }
  return {
    url: at(inject('pgClientUrl')),
    directUrl: at(adminUrl),
    async drop() {
      const client = new pg.Client(adminUrl)
      await client.connect()
      try {
        await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
      } finally {
        await client.end()
      }
    },
  }
}
