import { execFile } from 'node:child_process'
import { accessSync, constants } from 'node:fs'
import { writeFile } from 'node:fs/promises'
import path from 'node:path'
import { promisify } from 'node:util'
import type pg from 'pg'
import type { SendArgs, SendStatement } from './peer.js'

/** Where Debian's PostgreSQL packages put it when it is not on PATH. */
const DEBIAN_BINS = ['/usr/lib/postgresql/17/bin', '/usr/lib/postgresql/16/bin', '/usr/lib/postgresql/15/bin']

/** A pgbench binary on PATH or where Debian installs one; undefined when there is none. */
export function findPgbench(): string | undefined {
  for (const dir of [...(process.env.PATH ?? '').split(path.delimiter), ...DEBIAN_BINS]) {
    const candidate = path.join(dir, 'pgbench')
    try {
      accessSync(candidate, constants.X_OK)
      return candidate
    } catch {
      // not here
    }
  }
  return undefined
}

/** The arguments every send of the load has the same, as the server binds them: an application message, kept. */
const AS_THE_LOAD_SENDS: Record<string, string> = { contentType: "'application'", ephemeral: 'false' }

/** Columns of the pick table, by the argument each holds. */
const COLUMN: Record<string, string> = {
  convoId: 'convo_id',
  sender: 'sender',
  groupId: 'group_id',
  epoch: 'epoch',
  ciphertext: 'ct',
}

/**
 * pgbench running sendMessage's own statement, prepared (`-M prepared`), on
 * the bench's database: the most this PostgreSQL does on this machine. Each
 * transaction picks a (conversation, member, message) at random from a table
 * of the load's own, with a primary-key lookup (`\gset`), then sends the
 * statement with those values (no embed or msgId: NULL, as the load sends none).
 */
export async function pgbenchSends(opts: {
  binary: string
  url: string
  pool: pg.Pool
  statement: SendStatement
  picks: SendArgs[]
  dir: string
  connections: number
}) {
  await opts.pool.query('DROP TABLE IF EXISTS bench_pick')
  await opts.pool.query(
    'CREATE TABLE bench_pick (i int PRIMARY KEY, convo_id text, sender text, group_id text, epoch bigint, ct bytea)',
  )
  await opts.pool.query(
    `INSERT INTO bench_pick SELECT * FROM unnest($1::int[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::bytea[])`,
    [
      opts.picks.map((_, i) => i + 1),
      opts.picks.map((p) => p.convoId),
      opts.picks.map((p) => p.sender),
      opts.picks.map((p) => p.groupId),
      opts.picks.map((p) => p.epoch),
      opts.picks.map((p) => Buffer.from(p.ciphertext)),
    ],
  )
  const text = opts.statement.text.replace(/\$(\d+)/g, (_match, n: string) => {
    const arg = opts.statement.slots[Number(n) - 1] ?? ''
    // The server makes a new message id for each send; pgbench has the database make it.
    if (arg === 'messageId') return 'gen_random_uuid()'
    return COLUMN[arg] ? `:${COLUMN[arg]}` : (AS_THE_LOAD_SENDS[arg] ?? 'NULL')
  })
  const script = path.join(opts.dir, 'send.sql')
  await writeFile(
    script,
    [
      `\\set i random(1, ${opts.picks.length})`,
      'SELECT convo_id, sender, group_id, epoch, ct FROM bench_pick WHERE i = :i \\gset',
      `${text.trim().replace(/\s+/g, ' ')};`,
      '',
    ].join('\n'),
  )
  const url = new URL(opts.url)
  const env = {
    ...process.env,
    PGHOST: url.hostname,
    PGPORT: url.port || '5432',
    PGUSER: decodeURIComponent(url.username),
    PGPASSWORD: decodeURIComponent(url.password),
    PGDATABASE: url.pathname.slice(1),
  }
  /** One run of `seconds`: transactions (sends) per second, and how many. */
  return async (seconds: number): Promise<{ count: number; seconds: number }> => {
    const { stdout } = await promisify(execFile)(
      opts.binary,
      [
        '-n',
        '-M',
        'prepared',
        '-c',
        String(opts.connections),
        '-j',
        '2',
        '-T',
        String(Math.max(1, Math.round(seconds))),
        '-f',
        script,
      ],
      { env },
    )
    const tps = /tps = ([\d.]+)/.exec(stdout)
    const processed = /number of transactions actually processed: (\d+)/.exec(stdout)
    // A run that got nothing done (its connections still opening on a saturated machine) prints no tps.
    if (processed?.[1] === '0') return { count: 0, seconds }
    if (!tps || !processed) throw new Error(`pgbench said:\n${stdout}`)
    const count = Number(processed[1])
    return { count, seconds: count / Number(tps[1]) }
  }
}
