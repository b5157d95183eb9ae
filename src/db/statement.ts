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

/** Where a delegated write runs, and the function that runs it there (src/db/delegated.ts, src/db/steps.ts). */
export interface ShardPlacement<V extends Values> {
  /** The value that names the shard: the function is distributed by its argument. */
  shardKey: keyof V & string
  /**
   * Sent inside a transaction whose other statements are on the same shard
   * (createConvo, addMembers): distributed with force_delegation, which Citus
   * needs to delegate a call there.
   */
  inTransaction?: true
}

/** A delegated write's function: its body, the values it reads (one argument each), its result columns. */
export interface ShardFunction<V extends Values> extends ShardPlacement<V> {
  /** The PL/pgSQL body, whose arguments are `p_` and a value's name in snake case. */
  body: string
  /** The values it reads, in the order of its arguments. */
  values: readonly string[]
  /** The result's columns and their types (`name type, ...`): a function returning records needs them. */
  columns: string
}

export interface Statement<V extends Values = never, R = unknown> {
  readonly name: string
  readonly text: string
  /** The name of each parameter's value ($1, $2, ...). */
  readonly slots: readonly string[]
  readonly compiled: CompiledQuery<R>
  readonly shard?: ShardFunction<V>
}

export type ShardStatement<V extends Values = never, R = unknown> = Statement<V, R> & {
  readonly shard: ShardFunction<V>
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

/** The text of an SQL fragment that holds no parameter (a function's body: its values are its arguments). */
export function sqlText(name: string, fragment: Compiles<unknown>): string {
  const compiled = fragment.compile(compiler)
  if (compiled.parameters.length > 0) throw new Error(`${name} has a value that is not one of its values`)
  return compiled.sql
}

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
  shard?: ShardFunction<V>,
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
  const unbound = shard?.values.find((value) => !params.has(value))
  if (unbound) throw new Error(`statement ${name}'s function reads ${unbound}, which its statement does not`)
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
