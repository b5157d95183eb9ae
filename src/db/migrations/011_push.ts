import { sql, type Kysely } from 'kysely'

/**
 * Push notifications (APNs).
 *
 * - push_token: a device's push token (registerDeviceToken), on its user's
 *   shard, going with the device. Within a user a token is one device's:
 *   registering it for another of the user's devices moves it. It is not
 *   unique across users: a phone signed in to several accounts has one token
 *   for the app, and each account registers it for a device of its own (a
 *   push names the account it is for).
 * - push_outbox: what is to be pushed, written by the statement that stores
 *   it, on the conversation's shard: a message (seq; the sending device when
 *   named), a commit (when pushed at all), a Welcome to each device it
 *   is delivered to (recipients, recipient_devices: as welcome_delivery's
 *   rows, the device empty for one the server does not know). A worker claims rows for a while (claimed_by,
 *   claimed_until), pushes to every device concerned, and deletes them.
 * - push_retry: one device's push that APNs could not take yet (429, 5xx, no
 *   answer), kept as it was sent until it is due again, on the user's shard.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  const statements = [
    sql`CREATE TABLE push_token (
      user_did       text NOT NULL,
      device_id      text NOT NULL,
      token          text NOT NULL,
      platform       text NOT NULL DEFAULT 'ios' CHECK (platform IN ('ios', 'android', 'web')),
      registered_at  timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (user_did, device_id)
    )`,
    sql`CREATE UNIQUE INDEX push_token_token_key ON push_token (user_did, token)`,
    sql`CREATE TABLE push_outbox (
      convo_id          text NOT NULL,
      seq               bigint NOT NULL,
      kind              text NOT NULL CHECK (kind IN ('message', 'commit', 'welcome')),
      sender_device_id  text,
      recipients        text[],
      recipient_devices text[],
      created_at        timestamptz NOT NULL DEFAULT now(),
      claimed_by        uuid,
      claimed_until     timestamptz,
      PRIMARY KEY (convo_id, seq, kind),
      CHECK ((kind = 'welcome') = (recipients IS NOT NULL)),
      CHECK ((recipients IS NULL) = (recipient_devices IS NULL))
    )`,
    // The worker takes the oldest first; the metrics read the oldest's age.
    sql`CREATE INDEX push_outbox_created_idx ON push_outbox (created_at)`,
    sql`CREATE TABLE push_retry (
      user_did         text NOT NULL,
      device_id        text NOT NULL,
      apns_id          uuid NOT NULL,
      push_type        text NOT NULL,
      priority         smallint NOT NULL,
      collapse_id      text,
      payload          text NOT NULL,
      expires_at       timestamptz NOT NULL,
      attempts         int NOT NULL,
      next_attempt_at  timestamptz NOT NULL,
      last_error       text NOT NULL,
      created_at       timestamptz NOT NULL DEFAULT now(),
      claimed_by       uuid,
      claimed_until    timestamptz,
      PRIMARY KEY (user_did, device_id, apns_id)
    )`,
    sql`CREATE INDEX push_retry_due_idx ON push_retry (next_attempt_at)`,
  ]
  for (const statement of statements) await statement.execute(db)
  // On a Citus cluster the conversations are distributed already: the new tables join them (README, "Scaling").
  const { rows } = await sql`SELECT 1 FROM pg_extension WHERE extname = 'citus'`.execute(db)
  if (rows.length > 0) {
    for (const [table, column] of [
      ['push_token', 'user_did'],
      ['push_outbox', 'convo_id'],
      ['push_retry', 'user_did'],
    ]) {
      await sql`
        SELECT create_distributed_table(${table}, ${column}, colocate_with => 'convo')
        FROM pg_dist_partition WHERE logicalrelid = 'convo'::regclass`.execute(db)
    }
  }
  // One statement at a time: Citus sends a DDL statement's whole query string to the workers.
  for (const statement of [
    sql`ALTER TABLE push_token ADD FOREIGN KEY (user_did, device_id) REFERENCES device (user_did, device_id) ON DELETE CASCADE`,
    sql`ALTER TABLE push_outbox ADD FOREIGN KEY (convo_id) REFERENCES convo (id) ON DELETE CASCADE`,
    sql`ALTER TABLE push_retry ADD FOREIGN KEY (user_did, device_id) REFERENCES push_token (user_did, device_id) ON DELETE CASCADE`,
  ]) {
    await statement.execute(db)
  }
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`
    DROP TABLE push_retry;
    DROP TABLE push_outbox;
    DROP TABLE push_token;
  `.execute(db)
}
