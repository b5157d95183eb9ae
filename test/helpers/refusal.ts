/** For test files only: it uses vitest's expect, which benchmarks cannot load (as per-file.ts). */
import { sql } from 'kysely'
import { expect } from 'vitest'
import type { Db } from '../../src/db/schema.js'

/**
 * What the server holds, in one line: every table's rows, members' roles
 * and standing, policies, epochs and sequence numbers, reports and blocks.
 * A refused request must leave it as it was.
 */
async function databaseState(db: Db): Promise<string> {
  const { rows } = await sql<{ state: string }>`SELECT concat_ws(' ',
    (SELECT count(*) FROM convo), (SELECT sum(epoch) FROM convo), (SELECT sum(last_seq) FROM convo),
    (SELECT md5(string_agg(concat_ws('/', convo_id, did, role, promoted_by, left_at IS NULL), ',' ORDER BY convo_id, did)) FROM member),
    (SELECT md5(string_agg(concat_ws('/', convo_id, allow_member_add, allow_member_remove, max_members), ',' ORDER BY convo_id)) FROM convo_policy),
    (SELECT count(*) FROM message), (SELECT count(*) FROM commit), (SELECT count(*) FROM group_info),
    (SELECT count(*) FROM welcome), (SELECT count(*) FROM key_package WHERE consumed_at IS NULL),
    (SELECT md5(string_agg(concat_ws('/', id, status), ',' ORDER BY id)) FROM member_report),
    (SELECT count(*) FROM admin_action), (SELECT count(*) FROM user_block), (SELECT count(*) FROM account_takedown)
  ) AS state`.execute(db)
  return rows[0]?.state ?? ''
}

type Answer = { status: number; body?: { error?: string; message?: string } }

/** The request is refused with `status` and `error`, and changes nothing; answers its message. */
export async function expectRefusal(
  db: Db,
  request: () => Promise<Answer>,
  status: number,
  error: string | undefined,
): Promise<string> {
  const before = await databaseState(db)
  const { status: got, body } = await request()
  expect({ status: got, error: body?.error }, body?.message).toEqual({ status, error })
  expect(await databaseState(db)).toBe(before)
  return body?.message ?? ''
}
