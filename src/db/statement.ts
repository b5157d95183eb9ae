/**
 * Statements made once. A statement is built and compiled at its first use
 * from a template whose values are named parameters; a request only binds
 * its values, as a bare route does with a constant text. Each goes to
 * PostgreSQL as a named prepared statement, parsed and planned once per
 * connection (an unnamed one is planned again on every call, which costs as
 * much as running it), and a write that must run where its shard is says so
 * where it is defined (`onShard`): on Citus it becomes a function delegated to
 * that shard's node (src/db/delegated.ts).
 *
 * The connection (src/db/connection.ts) knows a statement by its text, which
 * is one string for the life of the process: it finds the name and the shard
 * from it. Only statements made here are prepared; a text that varies (an IN
 * list of any length) would pile up on every connection.
 */
import { Kysely, PostgresDialect, type CompiledQuery, type QueryResult } from 'kysely'
import type { DatabaseSchema, Db } from './schema.js'

/** A statement's values, by name. */
export type Values = object

/** Where a delegated write runs: on the node of the shard its `shardKey` value names. */
export interface ShardPlacement<V extends Values> {
  /** The value that names the shard: the function is distributed by this parameter. */
  shardKey: keyof V & string
  /** The statement's result columns and their types (`name type, ...`): a function returning records needs them. */
  columns: string
  /**
   * Sent inside a transaction whose other statements are on the same shard
   * (createConvo, addMembers): distributed with force_delegation, which Citus
   * needs to delegate a call there.
   */
  inTransaction?: true
}

export interface Statement<V extends Values = never, R = unknown> {
  readonly name: string
  readonly text: string
  /** The name of each parameter's value ($1, $2, ...). */
  readonly slots: readonly string[]
  readonly compiled: CompiledQuery<R>
  readonly shard?: ShardPlacement<V>
}

export type ShardStatement<V extends Values = never, R = unknown> = Statement<V, R> & {
  readonly shard: ShardPlacement<V>
}

/** What a template builds: a Kysely query builder, or an `sql` template. */
interface Compiles<R> {
  compile(db: Db): CompiledQuery<R>
}

/** Builds a statement from its values, given as named parameters, and the compiler. */
export type Template<V extends Values, R> = (values: V, db: Db) => Compiles<R>

/** A value the template names: compiled into a parameter, bound by name at each call. */
class Param {
  constructor(readonly key: string) {}
}

/** Compiles templates, and never connects. */
const compiler: Db = new Kysely<DatabaseSchema>({
  dialect: new PostgresDialect({
    pool: {
      connect: () => Promise.reject(new Error('the statement compiler has no connection')),
      end: () => Promise.resolve(),
    },
  }),
})

const byText = new Map<string, Statement>()
const byName = new Map<string, Statement>()

/** The statement made with this text, for the connection that sends it. */
export const statementOf = (text: string): Statement | undefined => byText.get(text)

/**
 * Makes the statement `name` from `build`, which gets the values as named
 * parameters (their types are the values' types, for the query builder) and
 * the compiler. Every value is one of the values (constants are SQL:
 * `sql.lit`). One name is one text: a name reused for another text is a
 * bug, refused before anything is sent.
 */
export function statement<V extends Values, R>(
  name: string,
  build: Template<V, R>,
  shard?: ShardPlacement<V>,
): Statement<V, R> {
  const params = new Map<string, Param>()
  const values = new Proxy({} as V, {
    get: (_target, key) => {
      if (typeof key !== 'string') return undefined
      let param = params.get(key)
      if (!param) params.set(key, (param = new Param(key)))
      return param
    },
  })
  const compiled = build(values, compiler).compile(compiler)
  const slots = compiled.parameters.map((value) => {
    // A value written into the template would be bound the same for every later call.
    if (!(value instanceof Param)) throw new Error(`statement ${name} has a value that is not one of its values`)
    return value.key
  })
  const made: Statement<V, R> = {
    name,
    text: compiled.sql,
    slots,
    compiled,
    ...(shard ? { shard } : {}),
  }
  if (shard && !params.has(shard.shardKey)) throw new Error(`statement ${name} does not use its shard key`)
  const named = byName.get(name)
  if (named && named.text !== made.text) throw new Error(`statement ${name} was built with two different texts`)
  const sameText = byText.get(made.text)
  if (sameText && sameText.name !== name) throw new Error(`statements ${sameText.name} and ${name} have one text`)
  byName.set(name, made)
  byText.set(made.text, made)
  return made
}

/** One statement per shape, made at the shape's first use. */
export function byShape<S, St>(make: (shape: S) => St, key: (shape: S) => string): (shape: S) => St {
  const made = new Map<string, St>()
  return (shape) => {
    const name = key(shape)
    let found = made.get(name)
    if (!found) made.set(name, (found = make(shape)))
    return found
  }
}

const bind = <V extends Values>(statement: Statement<V>, values: V): unknown[] =>
  statement.slots.map((slot) => (values as Record<string, unknown>)[slot])

/** Runs `statement` with `values` (an unset value is NULL). */
export function execute<V extends Values, R>(db: Db, statement: Statement<V, R>, values: V): Promise<QueryResult<R>> {
  return db.executeQuery<R>({ ...statement.compiled, parameters: bind(statement, values) })
}

/** A result's columns, listed once: the SELECT list and, for a delegated write's function, their types. */
export interface ResultColumns {
  /** `expression AS name, ...` (or the bare name). */
  list: string
  /** `name type, ...` */
  types: string
}

/** Columns by name: their type, and the expression that makes each when it is not the column itself. */
export function resultColumns(columns: Record<string, string | [type: string, expression: string]>): ResultColumns {
  const entries = Object.entries(columns)
  return {
    list: entries.map(([name, column]) => (typeof column === 'string' ? name : `${column[1]} AS ${name}`)).join(', '),
    types: entries.map(([name, column]) => `${name} ${typeof column === 'string' ? column : column[0]}`).join(', '),
  }
}
