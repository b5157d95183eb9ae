import { sql, type Kysely } from 'kysely'

/**
 * Live events beyond messages, and the tickets that open a WebSocket.
 *
 * - convo_event: what happens in a conversation that is not a message (a
 *   member joined or left, a member's role changed, a member's new device
 *   waits to be added, a member
 *   asks for a fresh GroupInfo). Its ids come from the same sequence as
 *   message.event_id, so one position orders both kinds of events and a
 *   stream's cursor stays exact across them (src/events/hub.ts). after_seq is
 *   the conversation's last message when it happened: a member who joined at
 *   or before it sees it. `did` is whom it is about; body holds its fields.
 *   On the conversation's shard.
 * - subscription_ticket: a short-lived, single-use ticket of
 *   getSubscriptionTicket, by the sha256 of the ticket (the ticket itself is
 *   never stored), which is also its shard key: the WebSocket that redeems it
 *   may reach any instance. used_at tells a ticket used twice from an
 *   unknown one until the sweep deletes it.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  const { rows } = await sql<{ seq: string }>`SELECT pg_get_serial_sequence('message', 'event_id') AS seq`.execute(db)
  const eventIds = rows[0]?.seq
  if (!eventIds) throw new Error('message.event_id has no sequence')
  for (const statement of [
    sql`CREATE TABLE convo_event (
      convo_id    text NOT NULL,
      event_id    bigint NOT NULL DEFAULT nextval(${sql.lit(eventIds)}::regclass),
      kind        text NOT NULL CHECK (kind IN ('membership', 'role', 'new_device', 'group_info_refresh', 'readdition')),
      did         text NOT NULL,
      after_seq   bigint NOT NULL CHECK (after_seq >= 0),
      body        jsonb NOT NULL,
      created_at  timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (convo_id, event_id)
    )`,
    // The streams read events by position, as they read messages.
    sql`CREATE INDEX convo_event_event_id_idx ON convo_event (event_id)`,
    sql`CREATE TABLE subscription_ticket (
      ticket_hash  text PRIMARY KEY,
      did          text NOT NULL,
      convo_id     text,
      expires_at   timestamptz NOT NULL,
      used_at      timestamptz
    )`,
    sql`CREATE INDEX subscription_ticket_expires_idx ON subscription_ticket (expires_at)`,
  ]) {
    await statement.execute(db)
  }
  // On a Citus cluster the conversations are distributed already: the new tables join them (docs/operating.md).
  const { rows: citus } = await sql`SELECT 1 FROM pg_extension WHERE extname = 'citus'`.execute(db)
  if (citus.length > 0) {
    for (const [table, column] of [
      ['convo_event', 'convo_id'],
      ['subscription_ticket', 'ticket_hash'],
    ]) {
      await sql`
        SELECT create_distributed_table(${table}, ${column}, colocate_with => 'convo')
        FROM pg_dist_partition WHERE logicalrelid = 'convo'::regclass`.execute(db)
    }
  }
  await sql`ALTER TABLE convo_event ADD FOREIGN KEY (convo_id) REFERENCES convo (id) ON DELETE CASCADE`.execute(db)
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`
    DROP TABLE subscription_ticket;
    DROP TABLE convo_event;
  `.execute(db)
}
