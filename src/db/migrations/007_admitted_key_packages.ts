import { sql, type Kysely } from 'kysely'

/**
 * A Welcome's key packages are settled on two shards, so that a
 * membership change writes on its conversation's shard alone:
 *
 * - key_package.reserved_convo_id (was used_convo_id): the conversation a
 *   Welcome naming the package was sent to, reserved on the owner's shard
 *   before the change (reserveWelcome). No other conversation's Welcome may
 *   name it; a retry for the same conversation may.
 * - admitted_key_package: the packages a conversation's Welcomes used, on
 *   the conversation's shard, with the epoch of the commit whose Welcome
 *   used each (was key_package.used_epoch). Its key keeps a package from
 *   admitting anyone to the same conversation twice.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    CREATE TABLE admitted_key_package (
      convo_id     text NOT NULL,
      ref          bytea NOT NULL,
      owner_did    text NOT NULL,
      epoch        bigint NOT NULL CHECK (epoch >= 0),
      admitted_at  timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (convo_id, ref)
    );
  `.execute(db)
  // On a Citus cluster the conversations are distributed already: the new
  // table joins them before it may point at them (docs/operating.md, "A Citus cluster").
  const { rows } = await sql`SELECT 1 FROM pg_extension WHERE extname = 'citus'`.execute(db)
  if (rows.length > 0) {
    await sql`
      SELECT create_distributed_table('admitted_key_package', 'convo_id', colocate_with => 'convo')
      FROM pg_dist_partition WHERE logicalrelid = 'convo'::regclass`.execute(db)
  }
  // One statement at a time: Citus sends a DDL statement's whole query string to the workers.
  for (const statement of [
    sql`ALTER TABLE admitted_key_package ADD FOREIGN KEY (convo_id) REFERENCES convo (id) ON DELETE CASCADE`,
    sql`INSERT INTO admitted_key_package (convo_id, ref, owner_did, epoch)
          SELECT used_convo_id, ref, owner_did, used_epoch FROM key_package
          WHERE used_convo_id IS NOT NULL AND ref IS NOT NULL
          ON CONFLICT DO NOTHING`,
    sql`ALTER TABLE key_package DROP CONSTRAINT key_package_used_check, DROP COLUMN used_epoch`,
    sql`ALTER TABLE key_package RENAME COLUMN used_convo_id TO reserved_convo_id`,
  ]) {
    await statement.execute(db)
  }
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`
    ALTER TABLE key_package RENAME COLUMN reserved_convo_id TO used_convo_id;
    ALTER TABLE key_package ADD COLUMN used_epoch bigint;
    -- A reservation no Welcome used was not a use.
    UPDATE key_package kp SET used_epoch = a.epoch FROM admitted_key_package a
      WHERE a.convo_id = kp.used_convo_id AND a.ref = kp.ref;
    UPDATE key_package SET used_convo_id = NULL WHERE used_epoch IS NULL;
    ALTER TABLE key_package ADD CONSTRAINT key_package_used_check CHECK ((used_convo_id IS NULL) = (used_epoch IS NULL));
    DROP TABLE admitted_key_package;
  `.execute(db)
}
