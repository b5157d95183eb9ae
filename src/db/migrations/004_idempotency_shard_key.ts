import { sql, type Kysely } from 'kysely'

/**
 * Idempotency records live with the data they answer for (the shard
 * key rule): `shard_key` is the conversation for conversation methods (for
 * createConvo, the group id in lowercase: the conversation's identity before it
 * has an id) and the caller for publishKeyPackage. The primary key becomes
 * (shard_key, scope_hash), so the record of a write is found, and claimed, on
 * its conversation's shard.
 *
 * `response` becomes json (text kept as written, not re-ordered as jsonb
 * does): a replay sends the very bytes the first answer had.
 *
 * Existing records get their shard key from what they answered; those that do
 * not say (addMembers answers no conversation id) are dropped. A retried
 * addMembers is still answered as the first time: the server recognises a
 * commit sent again by its content.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    ALTER TABLE idempotency_key ADD COLUMN shard_key text;
    UPDATE idempotency_key k SET shard_key = m.convo_id
      FROM message m
      WHERE k.nsid = 'blue.catbird.mls.sendMessage' AND m.id = (k.response->>'messageId')::uuid;
    UPDATE idempotency_key SET shard_key = lower(response->>'groupId')
      WHERE nsid = 'blue.catbird.mls.createConvo';
    UPDATE idempotency_key SET shard_key = caller_did
      WHERE nsid = 'blue.catbird.mls.publishKeyPackage';
    DELETE FROM idempotency_key WHERE shard_key IS NULL;
    ALTER TABLE idempotency_key
      ALTER COLUMN shard_key SET NOT NULL,
      ALTER COLUMN response TYPE json USING response::json,
      DROP CONSTRAINT idempotency_key_pkey,
      ADD PRIMARY KEY (shard_key, scope_hash);
  `.execute(db)
}

export async function down(db: Kysely<unknown>): Promise<void> {
  // One record per scope again: the newest of any that only their shard told apart.
  await sql`
    DELETE FROM idempotency_key a USING idempotency_key b
      WHERE a.scope_hash = b.scope_hash AND (a.created_at, a.shard_key) < (b.created_at, b.shard_key);
    ALTER TABLE idempotency_key
      DROP CONSTRAINT idempotency_key_pkey,
      DROP COLUMN shard_key,
      ALTER COLUMN response TYPE jsonb USING response::jsonb,
      ADD PRIMARY KEY (scope_hash);
  `.execute(db)
}
