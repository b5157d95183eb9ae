import { createHash } from 'node:crypto'
import type pg from 'pg'
import { violatedUniqueKey } from './errors.js'

/**
 * Citus runs a statement as one task on one node only when it has no INSERT
 * among its CTEs ("only SELECT, UPDATE, or DELETE common table expressions
 * may be router planned"); the hot writes (sendMessage, publishKeyPackage,
 * the key-package claim) are each one statement of data-modifying CTEs with
 * an INSERT, which Citus pulls through the coordinator and commits in two
 * phases. A function distributed by its shard key argument
 * (`create_distributed_function`, colocated with the conversations) is sent
 * whole to the node that holds that shard, where its statement runs on local
 * shards: one task, one node, no PREPARE TRANSACTION. The membership changes
 * (createConvo, addMembers) are transactions of several statements on one
 * conversation's shard, their write a statement of the same kind: its
 * function is distributed with force_delegation (Delegation.inTransaction), so that Citus sends the call
 * within the transaction to the node the transaction's other statements went
 * to, and the transaction commits there in one phase.
 *
 * With delegated writes on (DATABASE_DELEGATED_WRITES), each statement sent
 * with a delegation (executePrepared) becomes such a function, made from the
 * statement's own text (its $n are the function's arguments), created and
 * distributed once by the first connection that sends it, and called in its
 * place. The function's name holds a hash of the text, so a server whose
 * statement changed makes a new function beside the old one. Off (plain
 * PostgreSQL), nothing of this runs: the statement is sent as it is.
 */
export interface Delegation {
  /** The shard key's value: the function is distributed by the first parameter that holds it. */
  shardKey: string
  /** The statement's result columns and their types (`name type, ...`): a function returning records needs them. */
  columns: string
  /**
   * Sent inside a transaction whose other statements are on the same shard
   * (createConvo, addMembers): distributed with force_delegation, which
   * Citus needs to delegate a call there. Only those: the others need no
   * more than they had, and keep the functions (and names) they were made with.
   */
  inTransaction?: true
}

interface Delegated {
  shardKeyParam: number
  columns: string
  inTransaction: boolean
  /** The call, once the function exists (per process). */
  call?: Promise<{ name: string; text: string }>
}

const byText = new Map<string, Delegated>()

/** Registers `text` (one prepared statement's) as delegated, with its parameters' values of one call. */
export function registerDelegation(text: string, parameters: readonly unknown[], delegation: Delegation): void {
  if (byText.has(text)) return
  const index = parameters.indexOf(delegation.shardKey)
  if (index < 0) throw new Error('a delegated statement must take its shard key as a parameter')
  byText.set(text, {
    shardKeyParam: index + 1,
    columns: delegation.columns,
    inTransaction: delegation.inTransaction ?? false,
  })
}

/** What a connection that delegates sends for `text`: the call of its function, once made (scripts/citus-explain.ts). */
export async function sentText(text: string): Promise<string> {
  const call = byText.get(text)?.call
  return call ? (await call).text : text
}

const UNDEFINED_FUNCTION = '42883'
const DUPLICATE_FUNCTION = '42723'

type Query = (text: string, values?: unknown[]) => Promise<pg.QueryResult>

/**
 * Makes the function for `text` if it does not exist yet, on this
 * connection, and answers the statement that calls it. Its argument types
 * are the statement's parameter types as PostgreSQL infers them.
 */
async function functionFor(query: Query, text: string, delegated: Delegated): Promise<{ name: string; text: string }> {
  const probe = 'catbird_delegation_probe'
  const [, described] = (await query(
    `PREPARE ${probe} AS ${text}; SELECT parameter_types::text[] AS types FROM pg_prepared_statements WHERE name = '${probe}'; DEALLOCATE ${probe}`,
  )) as unknown as pg.QueryResult<{ types: string[] }>[]
  const types = described?.rows[0]?.types ?? []
  const hash = createHash('sha256')
    .update(delegated.inTransaction ? 'force_delegation:' : '')
    .update(text)
    .update(delegated.columns)
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
    // One implicit transaction: a function that exists is distributed too.
    const create = [
      `CREATE FUNCTION ${signature} RETURNS SETOF record LANGUAGE plpgsql AS $catbird$ BEGIN RETURN QUERY ${text}; END $catbird$`,
      ...(citus
        ? [
            `SELECT create_distributed_function('${signature}', '$${delegated.shardKeyParam}', colocate_with := 'convo'${
              delegated.inTransaction ? ', force_delegation := true' : ''
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
  return { name, text: `SELECT * FROM ${name}(${args}) AS delegated(${delegated.columns})` }
}

/**
 * Makes `client` send each delegated statement as the call of its
 * function (a named prepared statement when `prepared`).
 */
export function delegateByText(client: pg.PoolClient, prepared: boolean): void {
  const query = client.query.bind(client) as (...args: unknown[]) => Promise<pg.QueryResult>
  client.query = ((...args: unknown[]) => {
    const [text, values] = args
    const delegated = typeof text === 'string' ? byText.get(text) : undefined
    if (!delegated || typeof text !== 'string') return query(...args)
    const call = (delegated.call ??= functionFor((t, v) => query(t, v), text, delegated))
    return call.then(
      (fn) =>
        (prepared ? query({ name: fn.name, text: fn.text, values }) : query(fn.text, values)).catch(
          (err: { code?: string }) => {
            // Made inside a transaction that rolled back: made again by the next call.
            if (err.code === UNDEFINED_FUNCTION) delegated.call = undefined
            throw err
          },
        ),
      (err: unknown) => {
        delegated.call = undefined
        throw err
      },
    )
  }) as typeof client.query
}
