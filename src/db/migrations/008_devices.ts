import { sql, type Kysely } from 'kysely'

/**
 * Devices, and what the client-era contract keeps per device.
 *
 * - device: a user's registered devices (registerDevice), on the user's
 *   shard. A device is known by its server-made id, by the client's own
 *   persistent UUID, and by fact: the MLS signature key of the leaves of the
 *   key packages it registered with (`mls_signature_key`), which binds a key
 *   package to a device whatever body field names it.
 * - key_package.leaf_signature_key: the signature key of the package's leaf
 *   (how a package is bound to its device); device_id: that device, when known.
 * - opt_out: users who opted out of MLS chat (their key packages withdrawn).
 * - member_device: the devices of a member known to be in a conversation, by
 *   fact: a Welcome naming the device's key package admitted it, or its own
 *   external commit brought it in. On the conversation's shard.
 * - pending_device_addition: a member's new device waiting for another member
 *   to add it with a commit and a Welcome, one per (conversation, device).
 * - welcome_delivery gains device_id (empty: a recipient device the server
 *   does not know): a Welcome naming several devices of one user is
 *   delivered to each.
 * - message.msg_id: the client's own message id, unique in its conversation;
 *   content_type: what the MLS header says (application, proposal, commit);
 *   ephemeral: sent with `delivery: ephemeral`.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  const statements = [
    sql`CREATE TABLE device (
      user_did            text NOT NULL,
      device_id           text NOT NULL,
      device_uuid         text,
      name                text NOT NULL,
      signature_public_key bytea NOT NULL,
      mls_signature_key   bytea NOT NULL,
      created_at          timestamptz NOT NULL DEFAULT now(),
      last_seen_at        timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (user_did, device_id)
    )`,
    sql`CREATE UNIQUE INDEX device_uuid_key ON device (user_did, device_uuid) WHERE device_uuid IS NOT NULL`,
    sql`CREATE UNIQUE INDEX device_mls_key ON device (user_did, mls_signature_key)`,
    sql`ALTER TABLE key_package ADD COLUMN leaf_signature_key bytea, ADD COLUMN device_id text`,
    // A claim hands out the oldest available package of each device of an owner.
    sql`CREATE INDEX key_package_device_available_idx ON key_package (owner_did, device_id, created_at)
          WHERE consumed_at IS NULL AND NOT last_resort`,
    sql`CREATE TABLE opt_out (
      did             text PRIMARY KEY,
      opted_out_at    timestamptz NOT NULL DEFAULT now()
    )`,
    sql`CREATE TABLE member_device (
      convo_id   text NOT NULL,
      user_did   text NOT NULL,
      device_id  text NOT NULL,
      joined_at  timestamptz NOT NULL DEFAULT now(),
      joined_by  text NOT NULL CHECK (joined_by IN ('welcome', 'external_commit')),
      PRIMARY KEY (convo_id, user_did, device_id)
    )`,
    sql`CREATE TABLE pending_device_addition (
      convo_id       text NOT NULL,
      id             uuid NOT NULL,
      user_did       text NOT NULL,
      device_id      text NOT NULL,
      device_name    text NOT NULL,
      status         text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'in_progress', 'completed', 'cancelled')),
      claimed_by     text,
      claimed_until  timestamptz,
      created_at     timestamptz NOT NULL DEFAULT now(),
      settled_at     timestamptz,
      settled_by     text CHECK (settled_by IN ('complete', 'welcome', 'external_commit', 'left', 'device_deleted')),
      new_epoch      bigint,
      PRIMARY KEY (convo_id, id),
      CHECK (status <> 'in_progress' OR (claimed_by IS NOT NULL AND claimed_until IS NOT NULL))
    )`,
    // One addition per device and conversation: none is done twice.
    sql`CREATE UNIQUE INDEX pending_device_addition_device_key ON pending_device_addition (convo_id, user_did, device_id)`,
    sql`ALTER TABLE welcome_delivery ADD COLUMN device_id text NOT NULL DEFAULT ''`,
    sql`ALTER TABLE welcome_delivery DROP CONSTRAINT welcome_delivery_pkey, ADD PRIMARY KEY (convo_id, recipient_did, device_id)`,
    sql`ALTER TABLE message
          ADD COLUMN msg_id text,
          ADD COLUMN content_type text NOT NULL DEFAULT 'application'
            CHECK (content_type IN ('application', 'proposal', 'commit')),
          ADD COLUMN ephemeral boolean NOT NULL DEFAULT false`,
    sql`UPDATE message m SET content_type = 'commit' FROM commit c WHERE c.convo_id = m.convo_id AND c.seq = m.seq`,
    sql`CREATE UNIQUE INDEX message_msg_id_key ON message (convo_id, msg_id) WHERE msg_id IS NOT NULL`,
  ]
  for (const statement of statements) await statement.execute(db)
  // On a Citus cluster the conversations are distributed already: the new tables join them (README, "Scaling").
  const { rows } = await sql`SELECT 1 FROM pg_extension WHERE extname = 'citus'`.execute(db)
  if (rows.length > 0) {
    for (const [table, column] of [
      ['device', 'user_did'],
      ['opt_out', 'did'],
      ['member_device', 'convo_id'],
      ['pending_device_addition', 'convo_id'],
    ]) {
      await sql`
        SELECT create_distributed_table(${table}, ${column}, colocate_with => 'convo')
        FROM pg_dist_partition WHERE logicalrelid = 'convo'::regclass`.execute(db)
    }
  }
  for (const statement of [
    sql`ALTER TABLE member_device ADD FOREIGN KEY (convo_id) REFERENCES convo (id) ON DELETE CASCADE`,
    sql`ALTER TABLE pending_device_addition ADD FOREIGN KEY (convo_id) REFERENCES convo (id) ON DELETE CASCADE`,
  ]) {
    await statement.execute(db)
  }
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`
    DROP INDEX message_msg_id_key;
    ALTER TABLE message DROP COLUMN msg_id, DROP COLUMN content_type, DROP COLUMN ephemeral;
    -- One delivery per recipient again: of a user's devices, one keeps the Welcome.
    DELETE FROM welcome_delivery a USING welcome_delivery b
      WHERE a.convo_id = b.convo_id AND a.recipient_did = b.recipient_did AND a.device_id < b.device_id;
    ALTER TABLE welcome_delivery DROP CONSTRAINT welcome_delivery_pkey, ADD PRIMARY KEY (convo_id, recipient_did);
    ALTER TABLE welcome_delivery DROP COLUMN device_id;
    DROP TABLE pending_device_addition;
    DROP TABLE member_device;
    DROP TABLE opt_out;
    DROP INDEX key_package_device_available_idx;
    ALTER TABLE key_package DROP COLUMN leaf_signature_key, DROP COLUMN device_id;
    DROP TABLE device;
  `.execute(db)
}
