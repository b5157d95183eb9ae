import { sql, type Kysely } from 'kysely'

/**
 * A global position for every stored message, used as the resume cursor of
 * event streams. Instances learn of new messages from a NOTIFY sent after
 * the write commits (see src/events/hub.ts), not from a trigger: a NOTIFY
 * inside the writing transaction holds a database-wide lock through its
 * commit, so every message write would commit one at a time.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    ALTER TABLE message ADD COLUMN event_id bigint GENERATED ALWAYS AS IDENTITY;
    CREATE UNIQUE INDEX message_event_id_key ON message (event_id);
  `.execute(db)
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`ALTER TABLE message DROP COLUMN event_id`.execute(db)
}
