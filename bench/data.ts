import type pg from 'pg'

/**
 * Bulk loads straight into PostgreSQL (generate_series, no HTTP): the rest of
 * a big server, and backlogs. Counts are integers the bench chooses, so they
 * are written into the SQL; DIDs and other text go as parameters.
 */

const int = (n: number) => {
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`not a count: ${n}`)
  return String(n)
}

/** Conversations of other people (two members each), which the load never touches. */
export async function addBackgroundConvos(pool: pg.Pool, count: number, cipherSuite: string): Promise<void> {
  await pool.query(
    `WITH created AS (
       INSERT INTO convo (id, group_id, creator_did, cipher_suite)
       SELECT 'bg' || lpad(i::text, 11, '0'), md5('bg' || i), 'did:plc:benchbg' || i || 'a', $1
       FROM generate_series(1, ${int(count)}) AS i
       RETURNING id, creator_did
     )
     INSERT INTO member (convo_id, did)
     SELECT id, creator_did FROM created
     UNION ALL SELECT id, creator_did || 'b' FROM created`,
    [cipherSuite],
  )
}

/**
 * Gives every conversation `perConvo` more messages (128-byte ciphertexts),
 * interleaved in time as on a busy server: consecutive messages of one
 * conversation land on different pages, as they would. The table's indexes
 * and constraints are dropped for the load and rebuilt from their own
 * definitions afterwards (much faster than maintaining them row by row),
 * then the table is vacuumed and analysed as autovacuum would have. Start
 * server processes after a load: their event fan-out starts from the newest
 * message it finds, and would otherwise read the whole load back.
 */
export async function fillMessages(pool: pg.Pool, perConvo: number): Promise<void> {
  const client = await pool.connect()
  try {
    await client.query('BEGIN')
    const { rows: constraints } = await client.query<{ name: string; def: string }>(`
      SELECT conname AS name, pg_get_constraintdef(oid) AS def FROM pg_constraint
      WHERE conrelid = 'message'::regclass AND contype IN ('p', 'u', 'f')`)
    const { rows: indexes } = await client.query<{ name: string; def: string }>(`
      SELECT indexname AS name, indexdef AS def FROM pg_indexes
      WHERE tablename = 'message' AND indexname NOT IN (
        SELECT conname FROM pg_constraint WHERE conrelid = 'message'::regclass)`)
    const quote = (name: string) => client.escapeIdentifier(name)
    for (const index of indexes) await client.query(`DROP INDEX ${quote(index.name)}`)
    if (constraints.length) {
      await client.query(`ALTER TABLE message ${constraints.map((c) => `DROP CONSTRAINT ${quote(c.name)}`).join(', ')}`)
    }
    await client.query(`
      CREATE TEMP TABLE fill ON COMMIT DROP AS
      SELECT id, last_seq, epoch, (SELECT min(did) FROM member WHERE convo_id = convo.id) AS sender
      FROM convo;
      DO $$ BEGIN
        FOR i IN 1..${int(perConvo)} LOOP
          INSERT INTO message (id, convo_id, seq, sender_did, epoch, ciphertext, created_at)
          SELECT gen_random_uuid(), id, last_seq + i, sender, epoch,
                 decode(repeat(md5(id || i), 8), 'hex'), now() - make_interval(secs => ${int(perConvo)} - i)
          FROM fill;
        END LOOP;
      END $$;
      UPDATE convo SET last_seq = last_seq + ${int(perConvo)}, last_message_at = now();
      SET LOCAL maintenance_work_mem = '1GB';
    `)
    if (constraints.length) {
      await client.query(
        `ALTER TABLE message ${constraints.map((c) => `ADD CONSTRAINT ${quote(c.name)} ${c.def}`).join(', ')}`,
      )
    }
    for (const index of indexes) await client.query(index.def)
    await client.query('COMMIT')
    await client.query('VACUUM (ANALYZE) message, convo, member')
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {})
    throw err
  } finally {
    client.release()
  }
}

/** A backlog of `count` idempotency records that expired a day ago. */
export async function insertExpiredIdempotencyKeys(pool: pg.Pool, count: number, tag: string): Promise<void> {
  await pool.query(
    `INSERT INTO idempotency_key (shard_key, scope_hash, caller_did, nsid, fingerprint, status, response, created_at, expires_at)
     SELECT 'convo' || (i % 1000), sha256(convert_to($1 || i, 'UTF8')), 'did:plc:benchexpired', 'blue.catbird.mls.sendMessage',
            sha256(convert_to(i::text, 'UTF8')), 200,
            json_build_object('messageId', gen_random_uuid(), 'receivedAt', now() - interval '2 days'),
            now() - interval '2 days', now() - interval '1 day'
     FROM generate_series(1, ${int(count)}) AS i`,
    [`expired ${tag} `],
  )
}

/**
 * `convos` conversations of other people (two members each), each with
 * `perConvo` messages sent 40 days ago (every hundredth a commit): a backlog
 * for the retention worker. Inserted with the table's indexes in place, as
 * the messages of a live server are.
 */
export async function insertOldMessages(pool: pg.Pool, convos: number, perConvo: number): Promise<void> {
  await pool.query(
    `WITH created AS (
       INSERT INTO convo (id, group_id, creator_did, cipher_suite, epoch, last_seq, created_at, retained_from_at)
       SELECT 'old' || lpad(i::text, 10, '0'), md5('old' || i), 'did:plc:benchold' || i, 'bench', ${int(perConvo)} / 100,
              ${int(perConvo)}, now() - interval '41 days', now() - interval '40 days'
       FROM generate_series(1, ${int(convos)}) AS i
       RETURNING id, creator_did
     ), joined AS (
       INSERT INTO member (convo_id, did)
       SELECT id, creator_did FROM created UNION ALL SELECT id, creator_did || 'b' FROM created
     ), sent AS (
       INSERT INTO message (id, convo_id, seq, sender_did, epoch, ciphertext, content_type, created_at)
       SELECT gen_random_uuid(), id, seq, creator_did, seq / 100, decode(repeat(md5(id || seq), 8), 'hex'),
              CASE WHEN seq % 100 = 0 THEN 'commit' ELSE 'application' END,
              now() - interval '40 days' + make_interval(secs => seq)
       FROM created, generate_series(1, ${int(perConvo)}) AS seq
       RETURNING convo_id, seq, epoch, sender_did, ciphertext, created_at
     )
     INSERT INTO commit (convo_id, epoch, sender_did, data, seq, created_at)
     SELECT convo_id, epoch, sender_did, ciphertext, seq, created_at FROM sent WHERE seq % 100 = 0`,
  )
}

/**
 * `count` key packages for one owner (more than one user may publish, to make
 * the contention last). Stand-ins, not MLS: getKeyPackages hands packages out
 * without reading them, and making thousands of real ones would take longer
 * than the measure.
 */
export async function insertKeyPackages(
  pool: pg.Pool,
  owner: string,
  count: number,
  cipherSuite: string,
  tag: string,
): Promise<void> {
  await pool.query(
    `INSERT INTO key_package (owner_did, cipher_suite, data, data_sha256, ref, created_at, expires_at)
     SELECT $1, $2, data, sha256(data), sha256(data), now() - make_interval(secs => ${int(count)} - i), now() + interval '30 days'
     FROM (SELECT i, convert_to($3 || i || repeat('k', 200), 'UTF8') AS data
           FROM generate_series(1, ${int(count)}) AS i) AS generated`,
    [owner, cipherSuite, `key package ${tag} `],
  )
}

export async function count(pool: pg.Pool, sql: string, params: unknown[] = []): Promise<number> {
  const { rows } = await pool.query<{ n: string | number }>(sql, params)
  return Number(rows[0]?.n ?? 0)
}
