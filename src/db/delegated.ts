/**
 * Writes delegated to their shard's node (Citus, DATABASE_DELEGATED_WRITES).
 *
 * Citus runs a statement as one task on one node only when none of its CTEs
 * is an INSERT ("only SELECT, UPDATE, or DELETE common table expressions may
 * be router planned"), and the writes below are each one statement of
 * data-modifying CTEs with an INSERT: Citus would pull them through the
 * coordinator. A function distributed by its shard key argument
 * (`create_distributed_function`, colocated with the conversations) is sent
 * whole to the node that holds that shard, where its statement runs on local
 * shards. A write sent inside a transaction whose other statements are on the
 * same shard is distributed with force_delegation, so that Citus sends the
 * call to the node the transaction's other statements went to.
 *
 * With delegated writes on, each statement made with `onShard` becomes such a
 * function, made from the statement's own text (its $n are the function's
 * arguments), created and distributed by the first connection that sends it,
 * and called in its place. The function's name holds a hash of the text, so a
 * server whose statement changed makes a new function beside the old one.
 * Off (plain PostgreSQL), nothing of this runs: the statement is sent as it
 * is. scripts/citus-explain.ts runs each of them on a cluster.
 */
import { createHash } from 'node:crypto'
import type { QueryResult } from 'kysely'
import type pg from 'pg'
import { violatedUniqueKey } from './errors.js'
import type { Db } from './schema.js'
import {
  execute,
  statement,
  statementOf,
  type ShardPlacement,
  type ShardStatement,
  type Statement,
  type Template,
} from './statement.js'
import { assertTransaction } from './transaction.js'

/** Every delegated write, by the name its statements start with. */
const DELEGATED_WRITES = {
  store:
    'sendMessage, processExternalCommit: a message or commit, its sequence number, a keyed send’s record (services/messages.ts)',
  publish:
    'publishKeyPackage, publishKeyPackages: a key package or a batch, its owner’s count, the records of their keys (services/keyPackages.ts)',
  register_device:
    'registerDevice: a device, its key packages and those of its key bound to it, on its user’s shard (services/devices.ts)',
  claim_key_package: 'getKeyPackages: one owner’s key package handed out (services/keyPackages.ts)',
  create_convo: 'createConvo: the conversation and its members, in the request’s transaction (services/convos.ts)',
  change:
    'createConvo, addMembers, leaveConvo: a membership change, in the request’s transaction (services/members.ts)',
} as const

const isListed = (name: string) =>
  Object.keys(DELEGATED_WRITES).some((write) => name === write || name.startsWith(`${write}_`))

/** Makes a write that runs on its shard's node on Citus; its name starts with one of DELEGATED_WRITES. */
export function onShard<V extends object, R>(
  name: string,
  shard: ShardPlacement<V>,
  build: Template<V, R>,
): ShardStatement<V, R> {
  if (!isListed(name)) throw new Error(`delegated write ${name} is not listed in DELEGATED_WRITES`)
  return statement(name, build, shard) as ShardStatement<V, R>
}

/** Runs a write on the node of its shard; one sent inside a transaction must be. */
export function executeOnShard<V extends object, R>(
  db: Db,
  write: ShardStatement<V, R>,
  values: V,
): Promise<QueryResult<R>> {
  if (write.shard.inTransaction) assertTransaction(db)
  return execute(db, write, values)
}

const UNDEFINED_FUNCTION = '42883'
const DUPLICATE_FUNCTION = '42723'

type Query = (text: string | pg.QueryConfig, values?: unknown[]) => Promise<pg.QueryResult>

interface DelegatedCall {
  name: string
  text: string
}

/** The functions of one database's delegated writes: made once per process, and called. */
export class DelegatedWrites {
  private readonly calls = new Map<Statement, Promise<DelegatedCall>>()

  constructor(private readonly prepared: boolean) {}

  /** Sends `write` as the call of its function, made first if need be. */
  send(query: Query, write: ShardStatement, values: unknown[]): Promise<pg.QueryResult> {
    let call = this.calls.get(write)
    if (!call) this.calls.set(write, (call = functionFor(query, write)))
    return call.then(
      (fn) =>
        (this.prepared ? query({ name: fn.name, text: fn.text, values }) : query(fn.text, values)).catch(
          (err: { code?: string }) => {
            // Made inside a transaction that rolled back: made again by the next call.
            if (err.code === UNDEFINED_FUNCTION) this.calls.delete(write)
            throw err
          },
        ),
      (err: unknown) => {
        this.calls.delete(write)
        throw err
      },
    )
  }

  /** What a connection sends for a statement's text: the call of its function, once made (scripts/citus-explain.ts). */
  async sentText(text: string): Promise<string> {
    const made = statementOf(text)
    const call = made && this.calls.get(made)
    return call ? (await call).text : text
  }
}

/**
 * Makes the function of `write` if it does not exist yet, on this
 * connection, and answers the statement that calls it. Its argument types
 * are the statement's parameter types as PostgreSQL infers them.
 */
async function functionFor(query: Query, write: ShardStatement): Promise<DelegatedCall> {
  const probe = 'catbird_delegation_probe'
  const [, described] = (await query(
    `PREPARE ${probe} AS ${write.text}; SELECT parameter_types::text[] AS types FROM pg_prepared_statements WHERE name = '${probe}'; DEALLOCATE ${probe}`,
  )) as unknown as pg.QueryResult<{ types: string[] }>[]
  const types = described?.rows[0]?.types ?? []
  const { shardKey, columns, inTransaction } = write.shard
  const hash = createHash('sha256')
    .update(inTransaction ? 'force_delegation:' : '')
    .update(write.text)
    .update(columns)
    .digest('hex')
    .slice(0, 16)
  const name = `catbird_delegated_${hash}`
  const signature = `${name}(${types.join(', ')})`
  const { rows } = await query(
    `SELECT to_regprocedure($1) IS NOT NULL AS made, EXISTS (SELECT FROM pg_extension WHERE extname = 'citus') AS citus`,
    [signature],
  )
  const { made, citus } = rows[0] as { made: boolean; citus: boolean }
  if (!made) {
    const shardKeyParam = write.slots.indexOf(shardKey) + 1
    // One implicit transaction: a function that exists is distributed too.
    const create = [
      `CREATE FUNCTION ${signature} RETURNS SETOF record LANGUAGE plpgsql AS $catbird$ BEGIN RETURN QUERY ${write.text}; END $catbird$`,
      ...(citus
        ? [
            `SELECT create_distributed_function('${signature}', '$${shardKeyParam}', colocate_with := 'convo'${
              inTransaction ? ', force_delegation := true' : ''
            })`,
          ]
        : []),
    ].join(';\n')
    await query(create).catch((err: { code?: string }) => {
      // Another connection made it first.
      if (err.code !== DUPLICATE_FUNCTION && violatedUniqueKey(err) === undefined) throw err
    })
  }
  const args = types.map((_, i) => `$${i + 1}`).join(', ')
  return { name, text: `SELECT * FROM ${name}(${args}) AS delegated(${columns})` }
}
