/**
 * Writes delegated to their shard's node (Citus, DATABASE_DELEGATED_WRITES).
 *
 * A delegated write is written once, as steps (src/db/steps.ts: how to
 * write one), and made two ways. Plain PostgreSQL runs it as one statement
 * of data-modifying CTEs: one round trip. On Citus that statement would be
 * planned as a distributed query (a CTE with an INSERT cannot be routed to
 * one node), its CTE results copied to every node and committed there in two
 * phases; so there the write is a PL/pgSQL function of the same steps, one
 * statement each, distributed by its shard key argument
 * (`create_distributed_function`, colocated with the conversations). Citus
 * sends the call whole to the node that holds the shard, where each
 * statement runs on that node's own shards: one task, one node, and no
 * two-phase commit. A write sent inside a transaction whose other statements
 * are on the same shard is distributed with force_delegation, so that Citus
 * sends the call to the node the transaction's other statements went to.
 *
 * With delegated writes on, each statement made with `onShard` is sent as
 * the call of its function, created and distributed by the first connection
 * that sends it. The function's name holds a hash of its body, so a server
 * whose write changed makes a new function beside the old one. Off (plain
 * PostgreSQL), nothing of this runs: the statement is sent as it is.
 * scripts/citus.sh explain runs each of them on a cluster and counts, on
 * every node, the two-phase commits they make.
 */
import { createHash } from 'node:crypto'
import type { QueryResult } from 'kysely'
import type pg from 'pg'
import { violatedUniqueKey } from './errors.js'
import type { Db } from './schema.js'
import {
  execute,
  sqlText,
  statement,
  statementOf,
  type ShardPlacement,
  type ShardStatement,
  type Statement,
} from './statement.js'
import {
  argumentOf,
  renderFunctionBody,
  renderProcedureBody,
  renderStatement,
  type Procedure,
  type StepsTemplate,
} from './steps.js'
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
  convo_events:
    'createConvo, addMembers, leaveConvo, removeMember, role changes, registerDevice, groupInfoRefresh, readdition: events of a conversation, in a transaction (services/convoEvents.ts)',
} as const

const isListed = (name: string) =>
  Object.keys(DELEGATED_WRITES).some((write) => name === write || name.startsWith(`${write}_`))

/**
 * Makes a write that runs on its shard's node on Citus, from its steps or
 * its procedure (src/db/steps.ts): the statement plain PostgreSQL runs, and the function
 * Citus runs. Its name starts with one of DELEGATED_WRITES; `R` is a row of
 * its result.
 */
export function onShard<V extends object, R>(
  name: string,
  placement: ShardPlacement<V>,
  template: StepsTemplate<V> | Procedure<V>,
): ShardStatement<V, R> {
  if (!isListed(name)) throw new Error(`delegated write ${name} is not listed in DELEGATED_WRITES`)
  const fn = typeof template === 'function' ? renderFunctionBody(name, template) : renderProcedureBody(template)
  if (!fn.values.includes(placement.shardKey)) throw new Error(`delegated write ${name} does not use its shard key`)
  const shard = { ...placement, body: sqlText(name, fn.body), values: fn.values, columns: fn.columns }
  const build =
    typeof template === 'function'
      ? (values: V) => renderStatement(name, template, values)
      : (values: V) => template.statement(values)
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
  /** For each argument, the statement's parameter whose value it takes. */
  slots: number[]
}

/** The functions of one database's delegated writes: made once per process, and called. */
export class DelegatedWrites {
  private readonly calls = new Map<Statement, Promise<DelegatedCall>>()

  /**
   * `connect` opens a connection of its own to make a function on, outside
   * any request's transaction: a function is made once, and stays made
   * whatever becomes of the request that needed it first (a transaction
   * rolled back, or committed in one phase on Citus, where DDL is not).
   */
  constructor(
    private readonly prepared: boolean,
    private readonly connect: () => pg.Client,
  ) {}

  /** Sends `write` as the call of its function, made first if need be. */
  send(query: Query, write: ShardStatement, values: unknown[]): Promise<pg.QueryResult> {
    let call = this.calls.get(write)
    if (!call) this.calls.set(write, (call = this.make(write)))
    return call.then(
      (fn) => {
        const args = fn.slots.map((slot) => values[slot])
        return (this.prepared ? query({ name: fn.name, text: fn.text, values: args }) : query(fn.text, args)).catch(
          (err: { code?: string }) => {
            // Dropped since (by hand): made again by the next call.
            if (err.code === UNDEFINED_FUNCTION) this.calls.delete(write)
            throw err
          },
        )
      },
      (err: unknown) => {
        this.calls.delete(write)
        throw err
      },
    )
  }

  private async make(write: ShardStatement): Promise<DelegatedCall> {
    const client = this.connect()
    await client.connect()
    try {
      return await functionFor((text, values) => client.query(text, values), write)
    } finally {
      await client.end()
    }
  }

  /** What a connection sends for a statement and its values: the call of its function, once made (scripts/citus-explain.ts). */
  async sent(text: string, values: readonly unknown[]): Promise<{ text: string; values: unknown[] }> {
    const made = statementOf(text)
    const call = made && (await this.calls.get(made))
    return call ? { text: call.text, values: call.slots.map((slot) => values[slot]) } : { text, values: [...values] }
  }
}

/**
 * Makes the function of `write` if it does not exist yet, on `query`'s
 * connection, and answers the statement that calls it. Its arguments are
 * the values its body reads, one each, typed as PostgreSQL infers the
 * statement's parameters that hold them.
 */
async function functionFor(query: Query, write: ShardStatement): Promise<DelegatedCall> {
  const probe = 'catbird_delegation_probe'
  const [, described] = (await query(
    `PREPARE ${probe} AS ${write.text}; SELECT parameter_types::text[] AS types FROM pg_prepared_statements WHERE name = '${probe}'; DEALLOCATE ${probe}`,
  )) as unknown as pg.QueryResult<{ types: string[] }>[]
  const types = described?.rows[0]?.types ?? []
  const { shardKey, inTransaction, body, values, columns } = write.shard
  const slots = values.map((value) => write.slots.indexOf(value))
  const typeOf = (value: string) => types[write.slots.indexOf(value)] as string
  // One argument stands for every parameter of its value: they must agree.
  const disagreeing = write.slots.find((value, i) => types[i] !== typeOf(value))
  if (disagreeing !== undefined) throw new Error(`${write.name}: the parameters of ${disagreeing} have several types`)
  const args = values.map((value) => `${argumentOf(value)} ${typeOf(value)}`)
  const hash = createHash('sha256')
    .update(inTransaction ? 'force_delegation:' : '')
    .update(args.join())
    .update(body)
    .update(columns)
    .digest('hex')
    .slice(0, 16)
  const name = `catbird_delegated_${hash}`
  const signature = `${name}(${values.map(typeOf).join(', ')})`
  const { rows } = await query(
    `SELECT to_regprocedure($1) IS NOT NULL AS made, EXISTS (SELECT FROM pg_extension WHERE extname = 'citus') AS citus`,
    [signature],
  )
  const { made, citus } = rows[0] as { made: boolean; citus: boolean }
  if (!made) {
    // One implicit transaction: a function that exists is distributed too.
    const create = [
      // Custom plans: each statement planned with its values, which Citus routes to their shard.
      `CREATE FUNCTION ${name}(${args.join(', ')}) RETURNS SETOF record LANGUAGE plpgsql
         SET plan_cache_mode = force_custom_plan AS $catbird$ ${body} $catbird$`,
      ...(citus
        ? [
            `SELECT create_distributed_function('${signature}', '${argumentOf(shardKey)}', colocate_with := 'convo'${
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
  const params = values.map((_, i) => `$${i + 1}`).join(', ')
  return { name, text: `SELECT * FROM ${name}(${params}) AS delegated(${columns})`, slots }
}
