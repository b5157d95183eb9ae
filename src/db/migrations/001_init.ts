import { sql, type Kysely } from 'kysely'

// Migrations are frozen history: they take Kysely<unknown> and never import
// the application's table types, which describe only the latest schema.
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    CREATE TABLE convo (
      id               text PRIMARY KEY,
      group_id         text NOT NULL UNIQUE,
      creator_did      text NOT NULL,
      cipher_suite     text NOT NULL,
      epoch            bigint NOT NULL DEFAULT 0 CHECK (epoch >= 0),
      last_seq         bigint NOT NULL DEFAULT 0 CHECK (last_seq >= 0),
      name             text,
      description      text,
      created_at       timestamptz NOT NULL DEFAULT now(),
      last_activity_at timestamptz NOT NULL DEFAULT now(),
      last_message_at  timestamptz
    );

    CREATE TABLE member (
      convo_id   text NOT NULL REFERENCES convo (id) ON DELETE CASCADE,
      did        text NOT NULL,
      joined_at  timestamptz NOT NULL DEFAULT now(),
      -- Messages with seq <= joined_seq were sent before this member joined.
      joined_seq bigint NOT NULL DEFAULT 0,
      left_at    timestamptz,
      added_by   text,
      PRIMARY KEY (convo_id, did)
    );
    -- getConvos: a caller's current conversations.
    CREATE INDEX member_did_current_idx ON member (did, convo_id) WHERE left_at IS NULL;

    CREATE TABLE message (
      id          uuid PRIMARY KEY,
      convo_id    text NOT NULL REFERENCES convo (id) ON DELETE CASCADE,
      seq         bigint NOT NULL CHECK (seq > 0),
      sender_did  text NOT NULL,
      epoch       bigint NOT NULL CHECK (epoch >= 0),
      ciphertext  bytea NOT NULL,
      embed_type  text,
      embed_uri   text,
      created_at  timestamptz NOT NULL DEFAULT now(),
      CONSTRAINT message_convo_seq_key UNIQUE (convo_id, seq)
    );

    CREATE TABLE commit (
      convo_id    text NOT NULL REFERENCES convo (id) ON DELETE CASCADE,
      -- The epoch the commit was created in; applying it yields epoch + 1.
      epoch       bigint NOT NULL CHECK (epoch >= 0),
      sender_did  text NOT NULL,
      data        bytea NOT NULL,
      created_at  timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (convo_id, epoch)
    );

    CREATE TABLE key_package (
      id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      owner_did     text NOT NULL,
      cipher_suite  text NOT NULL,
      data          bytea NOT NULL,
      data_sha256   bytea NOT NULL UNIQUE,
      created_at    timestamptz NOT NULL DEFAULT now(),
      expires_at    timestamptz NOT NULL,
      consumed_at   timestamptz,
      consumed_by   text,
      CHECK ((consumed_at IS NULL) = (consumed_by IS NULL))
    );
    -- Hand-out picks the oldest available package of an owner.
    CREATE INDEX key_package_available_idx ON key_package (owner_did, cipher_suite, created_at)
      WHERE consumed_at IS NULL;
    -- getKeyPackageStats counts an owner's consumed packages too.
    CREATE INDEX key_package_owner_idx ON key_package (owner_did);

    -- One MLS Welcome carries secrets for every member a commit adds, so the
    -- bytes are stored once and each recipient's delivery state separately.
    CREATE TABLE welcome (
      id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      convo_id    text NOT NULL REFERENCES convo (id) ON DELETE CASCADE,
      data        bytea NOT NULL,
      created_at  timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX welcome_convo_idx ON welcome (convo_id);

    CREATE TABLE welcome_delivery (
      convo_id       text NOT NULL REFERENCES convo (id) ON DELETE CASCADE,
      recipient_did  text NOT NULL,
      welcome_id     bigint NOT NULL REFERENCES welcome (id) ON DELETE CASCADE,
      state          text NOT NULL DEFAULT 'available'
                     CHECK (state IN ('available', 'in_flight', 'consumed')),
      created_at     timestamptz NOT NULL DEFAULT now(),
      expires_at     timestamptz NOT NULL,
      fetched_at     timestamptz,
      fetch_count    integer NOT NULL DEFAULT 0,
      consumed_at    timestamptz,
      consumed_via   text CHECK (consumed_via IN ('confirm', 'message')),
      failure_count  integer NOT NULL DEFAULT 0,
      last_error     text,
      PRIMARY KEY (convo_id, recipient_did),
      CHECK ((state = 'in_flight') <= (fetched_at IS NOT NULL)),
      CHECK ((state = 'consumed') = (consumed_at IS NOT NULL))
    );
    CREATE INDEX welcome_delivery_welcome_idx ON welcome_delivery (welcome_id);
    -- The sweep looks for lapsed claims and ended retention.
    CREATE INDEX welcome_delivery_in_flight_idx ON welcome_delivery (fetched_at)
      WHERE state = 'in_flight';
    CREATE INDEX welcome_delivery_expires_idx ON welcome_delivery (expires_at)
      WHERE state <> 'consumed';

    CREATE TABLE idempotency_key (
      -- sha256(caller DID, NSID, key): the raw key is never stored.
      scope_hash   bytea PRIMARY KEY,
      caller_did   text NOT NULL,
      nsid         text NOT NULL,
      fingerprint  bytea NOT NULL,
      status       smallint NOT NULL,
      response     jsonb NOT NULL,
      created_at   timestamptz NOT NULL DEFAULT now(),
      expires_at   timestamptz NOT NULL
    );
    -- Expiry times grow with insertion order, so a BRIN index serves the
    -- cleanup at a fraction of a B-tree's cost on every keyed write.
    CREATE INDEX idempotency_key_expires_idx ON idempotency_key USING brin (expires_at);
  `.execute(db)
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`
    DROP TABLE idempotency_key;
    DROP TABLE welcome_delivery;
    DROP TABLE welcome;
    DROP TABLE key_package;
    DROP TABLE commit;
    DROP TABLE message;
    DROP TABLE member;
    DROP TABLE convo;
  `.execute(db)
}
