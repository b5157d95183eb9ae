import { sql, type Kysely } from 'kysely'

/**
 * A global position for every stored message, used as the resume cursor of
 * event streams, and a notification per insert (delivered at commit) so
 * every server instance learns of new messages without polling.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    ALTER TABLE message ADD COLUMN event_id bigint GENERATED ALWAYS AS IDENTITY;
    CREATE UNIQUE INDEX message_event_id_key ON message (event_id);

    CREATE FUNCTION notify_message_event() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      PERFORM pg_notify('catbird_message', NEW.event_id::text);
      RETURN NULL;
    END $$;
    CREATE TRIGGER message_event_notify AFTER INSERT ON message
      FOR EACH ROW EXECUTE FUNCTION notify_message_event();
  `.execute(db)
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`
    DROP TRIGGER message_event_notify ON message;
    DROP FUNCTION notify_message_event();
    ALTER TABLE message DROP COLUMN event_id;
  `.execute(db)
}
