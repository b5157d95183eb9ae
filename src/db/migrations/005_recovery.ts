import { sql, type Kysely } from 'kysely'

/**
 * What keeps members from being locked out:
 *
 * - group_info: the GroupInfo of a conversation's current epoch, from which
 *   a member whose device lost its state rejoins by external commit. One per
 *   conversation: a commit replaces it (or deletes it, when none comes with
 *   the commit), since no external commit can be built on an older epoch.
 * - key_package.last_resort: a key package handed out only when its owner
 *   has no other of its cipher suite left, and never consumed; at most one
 *   per owner and suite (a new one replaces the old). handed_out counts its
 *   hand-outs since the owner last published a regular package of the suite.
 * - last_resort_handout: who was handed which last-resort package, so a
 *   Welcome naming it is still proven to come from someone who got it.
 *
 * Keys carry the shard key of each table (convo_id, owner_did).
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    CREATE TABLE group_info (
      convo_id    text PRIMARY KEY REFERENCES convo (id) ON DELETE CASCADE,
      epoch       bigint NOT NULL CHECK (epoch >= 0),
      data        bytea NOT NULL,
      stored_by   text NOT NULL,
      created_at  timestamptz NOT NULL DEFAULT now()
    );

    ALTER TABLE key_package
      ADD COLUMN last_resort boolean NOT NULL DEFAULT false,
      ADD COLUMN handed_out integer NOT NULL DEFAULT 0,
      ADD CONSTRAINT key_package_last_resort_check CHECK (NOT last_resort OR consumed_at IS NULL);
    CREATE UNIQUE INDEX key_package_last_resort_key ON key_package (owner_did, cipher_suite) WHERE last_resort;
    -- Regular hand-outs never look at last-resort packages.
    DROP INDEX key_package_available_idx;
    CREATE INDEX key_package_available_idx ON key_package (owner_did, cipher_suite, created_at)
      WHERE consumed_at IS NULL AND NOT last_resort;

    CREATE TABLE last_resort_handout (
      owner_did   text NOT NULL,
      ref         bytea NOT NULL,
      claimed_by  text NOT NULL,
      claimed_at  timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (owner_did, ref, claimed_by)
    );
  `.execute(db)
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`
    DROP TABLE last_resort_handout;
    DELETE FROM key_package WHERE last_resort;
    DROP INDEX key_package_available_idx;
    CREATE INDEX key_package_available_idx ON key_package (owner_did, cipher_suite, created_at)
      WHERE consumed_at IS NULL;
    DROP INDEX key_package_last_resort_key;
    ALTER TABLE key_package DROP COLUMN last_resort, DROP COLUMN handed_out;
    DROP TABLE group_info;
  `.execute(db)
}
