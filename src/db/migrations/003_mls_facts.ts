import { sql, type Kysely } from 'kysely'

/**
 * What the server reads of MLS (src/mls):
 *
 * - key_package.ref: the package's KeyPackageRef (RFC 9420 §5.2), how a
 *   Welcome names the packages of the members it admits;
 * - key_package.used_convo_id, used_epoch: the commit (conversation, epoch)
 *   whose Welcome used the package, once;
 * - commit.seq: the commit's place in its conversation's message sequence,
 *   where members receive it in order with the messages (the message row has
 *   the same bytes; commits are few and small, and each read stays on one
 *   table).
 *
 * Key packages published before were never checked and have no ref, so no
 * Welcome could name them: the unconsumed ones are deleted (their owners see
 * it in getKeyPackageStats and publish new ones), the consumed ones stay for
 * the statistics. From here on every available package has a ref.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    ALTER TABLE key_package
      ADD COLUMN ref bytea,
      ADD COLUMN used_convo_id text,
      ADD COLUMN used_epoch bigint,
      ADD CONSTRAINT key_package_used_check CHECK ((used_convo_id IS NULL) = (used_epoch IS NULL));
    CREATE UNIQUE INDEX key_package_owner_ref_key ON key_package (owner_did, ref);
    DELETE FROM key_package WHERE consumed_at IS NULL;
    ALTER TABLE key_package ADD CONSTRAINT key_package_ref_check CHECK (ref IS NOT NULL OR consumed_at IS NOT NULL);
    ALTER TABLE commit ADD COLUMN seq bigint;
  `.execute(db)
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`
    ALTER TABLE commit DROP COLUMN seq;
    ALTER TABLE key_package DROP COLUMN ref, DROP COLUMN used_convo_id, DROP COLUMN used_epoch;
  `.execute(db)
}
