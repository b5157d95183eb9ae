import { sql, type Kysely } from 'kysely'

/**
 * Every key of the conversation tables contains its shard key,
 * so that each table can be distributed by it (Citus: `convo_id`, and
 * `owner_did` for key packages) and each write finds its rows on one shard:
 *
 * - convo: a new conversation's id is derived from its group id (the first
 *   128 bits of sha256 of the lowercase hex, see convoIdOf), so creating a
 *   group twice is a primary-key conflict and `UNIQUE (group_id)` goes. The
 *   group ids of conversations created before keep their say in
 *   convo_group_before_006 (never written again: a reference table on Citus).
 * - message: the primary key becomes (convo_id, id); `UNIQUE (event_id)`
 *   goes, a plain index keeps the event streams' reads fast.
 * - welcome: (convo_id, id), and welcome_delivery points at it by both.
 * - key_package: (owner_did, id) and (owner_did, data_sha256).
 * - createConvo's idempotency records move to the shard of the derived id.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    CREATE TABLE convo_group_before_006 (
      group_id  text PRIMARY KEY,
      convo_id  text NOT NULL
    );
    INSERT INTO convo_group_before_006 (group_id, convo_id)
      SELECT DISTINCT ON (lower(group_id)) lower(group_id), id FROM convo ORDER BY lower(group_id), created_at;
    ALTER TABLE convo DROP CONSTRAINT convo_group_id_key;

    ALTER TABLE message DROP CONSTRAINT message_pkey, ADD PRIMARY KEY (convo_id, id);
    DROP INDEX message_event_id_key;
    CREATE INDEX message_event_id_idx ON message (event_id);

    ALTER TABLE welcome_delivery DROP CONSTRAINT welcome_delivery_welcome_id_fkey;
    DROP INDEX welcome_delivery_welcome_idx;
    ALTER TABLE welcome DROP CONSTRAINT welcome_pkey, ADD PRIMARY KEY (convo_id, id);
    DROP INDEX welcome_convo_idx;
    ALTER TABLE welcome_delivery ADD CONSTRAINT welcome_delivery_welcome_fkey
      FOREIGN KEY (convo_id, welcome_id) REFERENCES welcome (convo_id, id) ON DELETE CASCADE;
    CREATE INDEX welcome_delivery_welcome_idx ON welcome_delivery (convo_id, welcome_id);

    ALTER TABLE key_package
      DROP CONSTRAINT key_package_pkey, ADD PRIMARY KEY (owner_did, id),
      DROP CONSTRAINT key_package_data_sha256_key, ADD CONSTRAINT key_package_owner_sha256_key UNIQUE (owner_did, data_sha256);
    -- The primary key serves an owner's lookups now.
    DROP INDEX key_package_owner_idx;

    UPDATE idempotency_key SET shard_key = substr(encode(sha256(convert_to(shard_key, 'UTF8')), 'hex'), 1, 32)
      WHERE nsid = 'blue.catbird.mls.createConvo';
  `.execute(db)
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`
    UPDATE idempotency_key k SET shard_key = lower(c.group_id)
      FROM convo c WHERE k.nsid = 'blue.catbird.mls.createConvo' AND k.shard_key = c.id;
    CREATE INDEX key_package_owner_idx ON key_package (owner_did);
    ALTER TABLE key_package
      DROP CONSTRAINT key_package_owner_sha256_key, ADD CONSTRAINT key_package_data_sha256_key UNIQUE (data_sha256),
      DROP CONSTRAINT key_package_pkey, ADD PRIMARY KEY (id);

    DROP INDEX welcome_delivery_welcome_idx;
    ALTER TABLE welcome_delivery DROP CONSTRAINT welcome_delivery_welcome_fkey;
    CREATE INDEX welcome_convo_idx ON welcome (convo_id);
    ALTER TABLE welcome DROP CONSTRAINT welcome_pkey, ADD PRIMARY KEY (id);
    ALTER TABLE welcome_delivery ADD CONSTRAINT welcome_delivery_welcome_id_fkey
      FOREIGN KEY (welcome_id) REFERENCES welcome (id) ON DELETE CASCADE;
    CREATE INDEX welcome_delivery_welcome_idx ON welcome_delivery (welcome_id);

    DROP INDEX message_event_id_idx;
    CREATE UNIQUE INDEX message_event_id_key ON message (event_id);
    ALTER TABLE message DROP CONSTRAINT message_pkey, ADD PRIMARY KEY (id);

    ALTER TABLE convo ADD CONSTRAINT convo_group_id_key UNIQUE (group_id);
    DROP TABLE convo_group_before_006;
  `.execute(db)
}
