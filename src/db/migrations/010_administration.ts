import { sql, type Kysely } from 'kysely'

/**
 * Administration, moderation, blocks, takedowns and retention.
 *
 * - member.role: `admin`, `moderator` or `member`, with when and by whom it
 *   was given (promoted_by is null for a conversation's creator and for a
 *   member the server made admin when the last admin left). Every
 *   conversation has an admin while it has members: its creator first.
 * - convo_policy: who may add and remove members, and the largest size; no
 *   row is the default policy. On the conversation's shard.
 * - admin_action: what admins did (and the server, when the last admin
 *   left), on the conversation's shard; kept MODERATION_RETENTION_DAYS.
 * - member_report: members' reports about each other, for the
 *   conversation's admins; kept MODERATION_RETENTION_DAYS.
 * - user_block: Bluesky blocks users reported themselves
 *   (handleBlockChange), on the blocker's shard.
 * - account_takedown: DIDs an operator took down (`npm run admin`); written
 *   by operators only, read whole by every instance (a reference table on Citus).
 * - pending_device_addition: settled ones are deleted with the admins' log
 *   (MODERATION_RETENTION_DAYS), by when they were settled.
 * - convo.retained_from_at: no message of the conversation is older (the
 *   retention worker looks at conversations whose time came);
 *   convo.purged_seq: messages up to this seq were deleted by it;
 *   convo.purged_epoch: so were the commits built on epochs up to this one.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  for (const statement of [
    // Constraints added apart from their columns, named (as PostgreSQL would): Citus refuses unnamed ones with a column.
    sql`ALTER TABLE member
          ADD COLUMN role text NOT NULL DEFAULT 'member',
          ADD COLUMN promoted_at timestamptz,
          ADD COLUMN promoted_by text`,
    sql`ALTER TABLE member ADD CONSTRAINT member_role_check CHECK (role IN ('member', 'moderator', 'admin'))`,
    sql`UPDATE member SET role = 'admin', promoted_at = convo.created_at
          FROM convo WHERE convo.id = member.convo_id AND member.did = convo.creator_did AND member.left_at IS NULL`,
    // A conversation its creator left gets the longest-standing member as its admin.
    sql`UPDATE member SET role = 'admin', promoted_at = now()
          FROM (SELECT DISTINCT ON (convo_id) convo_id, did FROM member m
                WHERE left_at IS NULL AND NOT EXISTS (
                  SELECT 1 FROM member a WHERE a.convo_id = m.convo_id AND a.left_at IS NULL AND a.role = 'admin')
                ORDER BY convo_id, joined_at, did) AS heir
          WHERE member.convo_id = heir.convo_id AND member.did = heir.did`,
    sql`CREATE TABLE convo_policy (
      convo_id               text PRIMARY KEY,
      allow_invites          boolean NOT NULL,
      admin_only_invites     boolean NOT NULL,
      allow_member_add       boolean NOT NULL,
      allow_member_remove    boolean NOT NULL,
      require_admin_approval boolean NOT NULL,
      max_members            integer CHECK (max_members >= 2),
      updated_at             timestamptz NOT NULL DEFAULT now(),
      updated_by             text NOT NULL
    )`,
    sql`CREATE TABLE admin_action (
      convo_id    text NOT NULL,
      id          uuid NOT NULL,
      actor_did   text,
      action      text NOT NULL,
      target_did  text,
      reason      text,
      created_at  timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (convo_id, id)
    )`,
    sql`CREATE INDEX admin_action_created_idx ON admin_action (created_at)`,
    sql`CREATE TABLE member_report (
      convo_id          text NOT NULL,
      id                uuid NOT NULL,
      reporter_did      text NOT NULL,
      reported_did      text NOT NULL,
      category          text NOT NULL,
      content           bytea NOT NULL,
      message_ids       text[] NOT NULL DEFAULT '{}',
      status            text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'resolved', 'dismissed')),
      created_at        timestamptz NOT NULL DEFAULT now(),
      resolved_by       text,
      resolved_at       timestamptz,
      resolution_action text,
      resolution_notes  text,
      PRIMARY KEY (convo_id, id),
      CHECK ((status = 'pending') = (resolved_at IS NULL))
    )`,
    // resolveReport names a report by its id alone.
    sql`CREATE INDEX member_report_id_idx ON member_report (id)`,
    sql`CREATE INDEX member_report_created_idx ON member_report (created_at)`,
    sql`CREATE TABLE user_block (
      blocker_did  text NOT NULL,
      blocked_did  text NOT NULL,
      block_uri    text,
      created_at   timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (blocker_did, blocked_did)
    )`,
    sql`CREATE TABLE account_takedown (
      did            text PRIMARY KEY,
      reason         text,
      taken_down_at  timestamptz NOT NULL DEFAULT now()
    )`,
    sql`ALTER TABLE convo ADD COLUMN retained_from_at timestamptz NOT NULL DEFAULT now(),
          ADD COLUMN purged_seq bigint NOT NULL DEFAULT 0,
          ADD COLUMN purged_epoch bigint`,
    sql`ALTER TABLE convo ADD CONSTRAINT convo_purged_seq_check CHECK (purged_seq >= 0)`,
    sql`UPDATE convo SET retained_from_at = created_at`,
    sql`CREATE INDEX convo_retained_from_idx ON convo (retained_from_at)`,
    // Settled device additions are kept as long as the admins' log.
    sql`CREATE INDEX pending_device_addition_settled_idx ON pending_device_addition (settled_at)
          WHERE settled_at IS NOT NULL`,
  ]) {
    await statement.execute(db)
  }
  // On a Citus cluster the conversations are distributed already: the new tables join them (docs/operating.md, "A Citus cluster").
  const { rows } = await sql`SELECT 1 FROM pg_extension WHERE extname = 'citus'`.execute(db)
  if (rows.length > 0) {
    for (const [table, column] of [
      ['convo_policy', 'convo_id'],
      ['admin_action', 'convo_id'],
      ['member_report', 'convo_id'],
      ['user_block', 'blocker_did'],
    ]) {
      await sql`
        SELECT create_distributed_table(${table}, ${column}, colocate_with => 'convo')
        FROM pg_dist_partition WHERE logicalrelid = 'convo'::regclass`.execute(db)
    }
    await sql`
      SELECT create_reference_table('account_takedown')
      WHERE EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = 'convo'::regclass)`.execute(db)
  }
  for (const statement of [
    sql`ALTER TABLE convo_policy ADD FOREIGN KEY (convo_id) REFERENCES convo (id) ON DELETE CASCADE`,
    sql`ALTER TABLE admin_action ADD FOREIGN KEY (convo_id) REFERENCES convo (id) ON DELETE CASCADE`,
    sql`ALTER TABLE member_report ADD FOREIGN KEY (convo_id) REFERENCES convo (id) ON DELETE CASCADE`,
  ]) {
    await statement.execute(db)
  }
}

export async function down(db: Kysely<unknown>): Promise<void> {
  // One statement at a time: Citus passes a DROP INDEX on to the workers as the string it came in.
  for (const statement of [
    sql`DROP INDEX pending_device_addition_settled_idx`,
    sql`DROP INDEX convo_retained_from_idx`,
    sql`ALTER TABLE convo DROP COLUMN retained_from_at, DROP COLUMN purged_seq, DROP COLUMN purged_epoch`,
    sql`DROP TABLE account_takedown`,
    sql`DROP TABLE user_block`,
    sql`DROP TABLE member_report`,
    sql`DROP TABLE admin_action`,
    sql`DROP TABLE convo_policy`,
    sql`ALTER TABLE member DROP COLUMN role, DROP COLUMN promoted_at, DROP COLUMN promoted_by`,
  ]) {
    await statement.execute(db)
  }
}
