/**
 * A delegated write written once, as steps, and rendered two ways
 * (src/db/delegated.ts makes both):
 *
 * - as one statement of CTEs, one per step: what plain PostgreSQL runs (one
 *   round trip, and one snapshot for the whole write);
 * - as the body of a PL/pgSQL function, one statement per step, the values
 *   carried between them in variables: what a Citus node runs when the
 *   function is delegated to it. Each statement touches one table and names
 *   the shard key's value, so Citus runs it on the node's own shards (local
 *   execution): no connection to another node, no intermediate result, and
 *   no two-phase commit. Written as one statement of CTEs instead, a
 *   function's body is planned as a distributed query whose CTE results
 *   Citus copies to every other node, and commits there in two phases.
 *
 * How to write a delegated write (the services' own are the examples:
 * `messageSteps` in src/services/messages.ts, `publishStatement` and the
 * device claim in src/services/keyPackages.ts, `admissionSteps` in
 * src/services/admission.ts; a write that loops over items, each depending
 * on the ones before, is a `Procedure` instead: the claim per device, the
 * batches of src/services/keyPackages.ts and src/services/devices.ts):
 *
 * 1. `onShard(name, { shardKey }, (v, s) => ({ steps, result }))`, its name
 *    listed in DELEGATED_WRITES. `v` holds the values by name (`${v.convoId}`
 *    in a Kysely `sql` template: a parameter in the statement, the function's
 *    argument `p_convo_id` in its body); each name is one argument, however
 *    often it is used.
 * 2. Each step is one statement on one table, named (the name is a CTE, or a
 *    record variable: no table's or column's name, or PL/pgSQL will call the
 *    reference ambiguous at the first call), whose WHERE or values name the
 *    shard key's value, not a value read from another step: `select` (one
 *    row, at most: `tail` for ORDER BY, LIMIT, FOR UPDATE), `insert` (one row
 *    of `values`; `tail` for ON CONFLICT), `update`, `delete`, each with
 *    `returning` when a later step or the result reads what it wrote. No
 *    data-modifying CTE inside a step, no reference to another step's CTE
 *    in its text: steps meet only through the fields below.
 * 3. A later step reads an earlier one's columns as `step.column`, and names
 *    it in `uses` (it runs only when that one found or wrote a row; a step
 *    that may write several rows cannot be used so). `after` and `unless`
 *    run a step only when another found or wrote a row, or did not; `when`
 *    is a further condition on values and used steps (never on the step's
 *    own table: that goes in `where`).
 * 4. A step over several rows (`each`: a FROM item of values, e.g.
 *    sql`unnest(${v.dids}::text[]) AS m(did)`, its columns read as
 *    `m.did`) writes one row per item: one statement with that FROM item in
 *    the CTE, a loop of one-row statements in the function. `keep` names the
 *    RETURNING columns (and their types) the result reads of all its rows,
 *    through `s.rows(step)`.
 * 5. The result: its columns and their types, and its rows, each made from
 *    one step's row (`from`) or none; several are UNION ALL. `s.found(step)`
 *    and `s.count(step)` say whether a step found or wrote rows, and how many.
 *    `beside` adds a step's row to every result row (a keyed write's record
 *    found: src/idempotency/statement.ts, `recordedSteps`).
 *
 * On plain PostgreSQL, test/db/steps.test.ts runs every delegated write of
 * the suite both ways and compares answers and rows written;
 * `scripts/citus.sh explain` counts, on every node of a cluster, the
 * two-phase commits and connections each one makes.
 */
import { sql, type RawBuilder } from 'kysely'

type Fragment = RawBuilder<unknown>

interface Gates {
  /** Earlier one-row steps whose columns this one reads (`step.column`): it runs only when each found or wrote a row. */
  uses?: readonly string[]
  /** Runs only when these found or wrote a row. */
  after?: readonly string[]
  /** Runs only when these found or wrote nothing. */
  unless?: readonly string[]
  /** A further condition, on values and used steps (and the row of `each`). */
  when?: Fragment
}

interface Writes {
  /** One row written per item of this FROM item (`unnest(...) AS alias(columns)`), named `alias`. */
  each?: { alias: string; rows: Fragment }
  returning?: Fragment
  /** RETURNING columns kept of every row, by type: what `rows(step)` reads. */
  keep?: Readonly<Record<string, string>>
}

export type Step = { name: string } & Gates &
  (
    | { select: Fragment; from?: string; where?: Fragment; tail?: Fragment }
    | ({ insert: string; values: Readonly<Record<string, unknown>>; tail?: Fragment } & Writes)
    | ({ update: string; set: Fragment; where: Fragment } & Writes)
    | ({ delete: string; where: Fragment } & Writes)
  )

export interface StepsResult {
  /** The result's columns, by type, in order. */
  columns: Readonly<Record<string, string>>
  /** Its rows: one per row of `from` (a one-row step), or one; each column's value. Several: UNION ALL. */
  rows: ReadonlyArray<{ from?: string; values: Readonly<Record<string, unknown>> }>
  /** A step whose row comes with every result row (its columns after the result's), and alone when there is none. */
  beside?: { step: string; columns: Readonly<Record<string, string>> }
}

export interface Steps {
  steps: readonly Step[]
  result: StepsResult
}

/** What a step or the result says of other steps, in the rendering at hand. */
export interface StepRefs {
  /** Whether the step found or wrote a row. */
  found(step: string): Fragment
  /** How many rows the step wrote (bigint). */
  count(step: string): Fragment
  /** The step's rows as a FROM item named after it, with the columns it keeps. */
  rows(step: string): Fragment
}

/** Builds a write's steps from its values (named parameters, or the function's arguments) and the step references. */
export type StepsTemplate<V> = (values: V, refs: StepRefs) => Steps

const isSelect = (step: Step): step is Extract<Step, { select: Fragment }> => 'select' in step
const writesOf = (step: Step): Writes => (isSelect(step) ? {} : step)
const dependencies = (step: Step) => [...(step.uses ?? []), ...(step.after ?? []), ...(step.unless ?? [])]
const IDENTIFIER = /^[a-z_][a-z0-9_]*$/

/** The steps the references of a rendering named: what a step is asked about changes how it is rendered. */
interface References {
  found: Set<string>
  count: Set<string>
  rows: Set<string>
}

/** Refuses a write whose steps do not fit the rules above: caught when the write is made, before anything is sent. */
function check(name: string, write: Steps, referenced: References): void {
  const seen = new Map<string, Step>()
  const refuse = (why: string): never => {
    throw new Error(`delegated write ${name}: ${why}`)
  }
  const earlier = (step: string, by: string): Step =>
    seen.get(step) ?? refuse(`${by} names ${step}, which is no earlier step`)
  for (const step of write.steps) {
    if (!IDENTIFIER.test(step.name) || step.name.includes('__') || seen.has(step.name)) {
      refuse(`step name ${step.name} is not a new identifier without a double underscore`)
    }
    for (const used of dependencies(step)) earlier(used, step.name)
    for (const used of step.uses ?? []) {
      if (writesOf(earlier(used, step.name)).each) refuse(`${step.name} uses ${used}, which writes several rows`)
    }
    const { each, keep, returning } = writesOf(step)
    if (keep && !(returning && each)) refuse(`${step.name} keeps columns of rows it does not return, one by one`)
    if (each && (!IDENTIFIER.test(each.alias) || seen.has(each.alias)))
      refuse(`${step.name}'s rows are named ${each.alias}`)
    seen.set(step.name, step)
  }
  for (const step of [...referenced.found, ...referenced.count]) earlier(step, 'a reference')
  for (const step of referenced.rows) if (!writesOf(earlier(step, 'rows()')).keep) refuse(`${step} keeps no rows`)
  const columns = Object.keys(write.result.columns).join()
  for (const row of write.result.rows) {
    if (row.from !== undefined && writesOf(earlier(row.from, 'the result')).each) {
      refuse(`the result is made from ${row.from}, which writes several rows`)
    }
    if (Object.keys(row.values).join() !== columns) refuse("a result row does not give the result's columns in order")
  }
  const { beside } = write.result
  if (beside) {
    const step = earlier(beside.step, 'beside')
    if (!isSelect(step) || dependencies(step).length > 0 || step.when) {
      refuse('the step beside the result must be a select that always runs')
    }
  }
}

/** References that remember what they were asked about. */
function tracking(made: StepRefs): { refs: StepRefs; referenced: References } {
  const referenced: References = { found: new Set(), count: new Set(), rows: new Set() }
  return {
    referenced,
    refs: {
      found: (step) => (referenced.found.add(step), made.found(step)),
      count: (step) => (referenced.count.add(step), made.count(step)),
      rows: (step) => (referenced.rows.add(step), made.rows(step)),
    },
  }
}

const list = (fragments: readonly Fragment[], separator = ', ') => sql.join(fragments, sql.raw(separator))
const raw = (text: string) => sql.raw(text)
const typed = (value: unknown, type: string) => sql`(${value})::${raw(type)}`
const entries = <T>(record: Readonly<Record<string, T>>) => Object.entries(record)
const columnList = (columns: Readonly<Record<string, unknown>>) => raw(Object.keys(columns).join(', '))

/** The write as one statement of CTEs (plain PostgreSQL). */
export function renderStatement<V>(name: string, template: StepsTemplate<V>, values: V): Fragment {
  const { refs, referenced } = tracking({
    found: (step) => sql`EXISTS (SELECT 1 FROM ${raw(step)})`,
    count: (step) => sql`(SELECT count(*) FROM ${raw(step)})`,
    rows: (step) => raw(step),
  })
  const write = template(values, refs)
  check(name, write, referenced)
  // A step others ask about returns rows, to be asked.
  const asked = new Set([
    ...referenced.found,
    ...referenced.count,
    ...write.steps.flatMap((step) => [...(step.after ?? []), ...(step.unless ?? [])]),
  ])
  const ctes = write.steps.map((step) => {
    const conditions = [
      ...(step.after ?? []).map((s) => sql`EXISTS (SELECT 1 FROM ${raw(s)})`),
      ...(step.unless ?? []).map((s) => sql`NOT EXISTS (SELECT 1 FROM ${raw(s)})`),
      ...(step.when ? [step.when] : []),
    ]
    const where = (first: Fragment | undefined) => {
      const all = [...(first ? [first] : []), ...conditions]
      return all.length ? sql` WHERE ${list(all, ' AND ')}` : sql``
    }
    const { each, returning } = writesOf(step)
    // The steps it reads join it (no row, no write), as do the rows it writes.
    const sources = [...(step.uses ?? []).map(raw), ...(each ? [each.rows] : [])]
    const from = (keyword: string) => (sources.length ? sql` ${raw(keyword)} ${list(sources)}` : sql``)
    const returns = returning ?? (asked.has(step.name) ? sql`1` : undefined)
    const returningSql = returns ? sql` RETURNING ${returns}` : sql``
    let text: Fragment
    if (isSelect(step)) {
      const tables = [...(step.from ? [raw(step.from)] : []), ...sources]
      text = sql`SELECT ${step.select}${tables.length ? sql` FROM ${list(tables)}` : sql``}${where(step.where)}${
        step.tail ? sql` ${step.tail}` : sql``
      }`
    } else if ('insert' in step) {
      text = sql`INSERT INTO ${raw(step.insert)} (${columnList(step.values)}) SELECT ${list(
        Object.values(step.values).map((value) => sql`${value}`),
      )}${from('FROM')}${where(undefined)}${step.tail ? sql` ${step.tail}` : sql``}${returningSql}`
    } else if ('update' in step) {
      text = sql`UPDATE ${raw(step.update)} SET ${step.set}${from('FROM')}${where(step.where)}${returningSql}`
    } else {
      text = sql`DELETE FROM ${raw(step.delete)}${from('USING')}${where(step.where)}${returningSql}`
    }
    return sql`${raw(step.name)} AS (
  ${text}
)`
  })
  const { columns, rows, beside } = write.result
  const types = Object.values(columns)
  const selects = rows.map(
    (row) =>
      sql`SELECT ${list(
        entries(row.values).map(([column, value], i) => sql`${typed(value, types[i] as string)} AS ${raw(column)}`),
      )}${row.from ? sql` FROM ${raw(row.from)}` : sql``}`,
  )
  const result = list(selects, ' UNION ALL ')
  if (!beside) return sql`WITH ${list(ctes)} ${result}`
  const besideColumns = Object.keys(beside.columns).map((column) => raw(`${beside.step}.${column}`))
  return sql`WITH ${list(ctes)}, written AS (${result}) SELECT written.*, ${list(
    besideColumns,
  )} FROM written FULL JOIN ${raw(beside.step)} ON true`
}

/** A value's argument in the function: `p_` and its name in snake case. */
export const argumentOf = (value: string): string => `p_${value.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)}`

/** Values that stand for the function's arguments, and the names of those read. */
function functionArguments<V>(): { values: V; read: Set<string> } {
  const read = new Set<string>()
  const values = new Proxy({} as V & object, {
    get: (_target, key) => {
      if (typeof key !== 'string') return undefined
      read.add(key)
      return raw(argumentOf(key))
    },
  })
  return { values, read }
}

/**
 * A delegated write whose function is written out beside its statement,
 * for a write over several items where what one item does depends on the
 * items before it (a batch stored in order, one hand-out per device): a
 * loop, which steps do not make. Its body keeps the steps' rules: each
 * statement on one table, naming the shard key's value, values carried in
 * variables, the result made from variables alone (RETURN QUERY without a
 * table). test/db/steps.test.ts holds the two to the same answers and rows.
 */
export interface Procedure<V> {
  /** The statement plain PostgreSQL runs. */
  statement: (values: V) => Fragment
  /** The function's body (`DECLARE ... BEGIN ... END`), its values the function's arguments. */
  body: (values: V) => Fragment
  /** The result's columns, by type, in order. */
  columns: Readonly<Record<string, string>>
}

/** A procedure's function: its body and the values it reads, as renderFunctionBody answers. */
export function renderProcedureBody<V>(procedure: Procedure<V>): { body: Fragment; values: string[]; columns: string } {
  const { values, read } = functionArguments<V>()
  const body = procedure.body(values)
  const columns = entries(procedure.columns).map(([column, type]) => `${column} ${type}`)
  return { body, values: [...read], columns: columns.join(', ') }
}

/** The function's own variables (steps' names have no double underscore). */
const ROWS = 'catbird__rows'
const RETURNED = 'catbird__returned'
const keptArray = (step: string, column: string) => `${step}__${column}`

/**
 * The write as the body of a PL/pgSQL function (Citus): one statement per
 * step, each run only when its gates let it, what it returns in a record
 * variable named after it; the result made from variables alone. Values are
 * the function's arguments (`argumentOf`). Returns the body and the names of
 * the values it reads.
 */
export function renderFunctionBody<V>(
  name: string,
  template: StepsTemplate<V>,
): { body: Fragment; values: string[]; columns: string } {
  const { values, read } = functionArguments<V>()
  // The columns each step keeps, for `rows`: known once the steps are (a template is made twice, the same).
  const nothing = sql``
  const kept = new Map(
    template(values, { found: () => nothing, count: () => nothing, rows: () => nothing }).steps.map((step) => [
      step.name,
      Object.keys(writesOf(step).keep ?? {}),
    ]),
  )
  const { refs, referenced } = tracking({
    found: (step) => raw(`${step}_found`),
    count: (step) => raw(`${step}_count`),
    rows: (step) => {
      const columns = kept.get(step) ?? []
      return raw(
        `unnest(${columns.map((column) => keptArray(step, column)).join(', ')}) AS ${step}(${columns.join(', ')})`,
      )
    },
  })
  const write = template(values, refs)
  check(name, write, referenced)
  const counted = (step: string) => referenced.count.has(step)
  const declarations: string[] = []
  const statements = write.steps.map((step) => {
    const { each, returning, keep } = writesOf(step)
    const into = isSelect(step) || returning ? sql` INTO ${raw(step.name)}` : sql``
    if (isSelect(step) || returning) declarations.push(`${step.name} record;`)
    declarations.push(`${step.name}_found boolean := false;`)
    if (counted(step.name)) declarations.push(`${step.name}_count bigint := 0;`)
    for (const [column, type] of entries(keep ?? {}))
      declarations.push(`${keptArray(step.name, column)} ${type}[] := '{}';`)
    const returningSql = returning ? sql` RETURNING ${returning}${into}` : sql``
    let text: Fragment
    if (isSelect(step)) {
      text = sql`SELECT ${step.select}${into}${step.from ? sql` FROM ${raw(step.from)}` : sql``}${
        step.where ? sql` WHERE ${step.where}` : sql``
      }${step.tail ? sql` ${step.tail}` : sql``}`
    } else if ('insert' in step) {
      text = sql`INSERT INTO ${raw(step.insert)} (${columnList(step.values)}) VALUES (${list(
        Object.values(step.values).map((value) => sql`${value}`),
      )})${step.tail ? sql` ${step.tail}` : sql``}${returningSql}`
    } else if ('update' in step) {
      text = sql`UPDATE ${raw(step.update)} SET ${step.set} WHERE ${step.where}${returningSql}`
    } else {
      text = sql`DELETE FROM ${raw(step.delete)} WHERE ${step.where}${returningSql}`
    }
    const found = raw(`${step.name}_found`)
    const count = raw(`${step.name}_count`)
    let run: Fragment
    if (each) {
      // One row per item: each statement a one-row write on the shard.
      declarations.push(`${each.alias} record;`)
      if (counted(step.name)) declarations.push(`${ROWS} bigint;`)
      const tally = counted(step.name)
        ? sql` GET DIAGNOSTICS ${raw(ROWS)} = ROW_COUNT; ${count} := ${count} + ${raw(ROWS)};`
        : sql``
      const keeps = Object.keys(keep ?? {}).map((column) => {
        const array = raw(keptArray(step.name, column))
        return sql` ${array} := array_append(${array}, ${raw(`${step.name}.${column}`)});`
      })
      const one = sql`${text};${tally} IF FOUND THEN ${found} := true;${sql.join(keeps, sql``)} END IF;`
      run = sql`FOR ${raw(each.alias)} IN SELECT * FROM ${each.rows} LOOP ${
        step.when ? sql`IF ${step.when} THEN ${one} END IF;` : one
      } END LOOP;`
    } else {
      const tally = counted(step.name) ? sql` GET DIAGNOSTICS ${count} = ROW_COUNT;` : sql``
      run = sql`${text}; ${found} := FOUND;${tally}`
      // Nested, not ANDed with the gates: a used step's columns are read only once it has a row.
      if (step.when) run = sql`IF ${step.when} THEN ${run} END IF;`
    }
    const gates = [
      ...[...(step.uses ?? []), ...(step.after ?? [])].map((s) => raw(`${s}_found`)),
      ...(step.unless ?? []).map((s) => raw(`NOT ${s}_found`)),
    ]
    return gates.length ? sql`IF ${list(gates, ' AND ')} THEN ${run} END IF;` : run
  })
  const { columns, rows, beside } = write.result
  const types = Object.values(columns)
  const besideValues = beside
    ? entries(beside.columns).map(([column, type]) => typed(raw(`${beside.step}.${column}`), type))
    : []
  const results = rows.map((row) => {
    const selected = Object.values(row.values).map((value, i) => typed(value, types[i] as string))
    const returned = sql`RETURN QUERY SELECT ${list([...selected, ...besideValues])};${
      beside ? sql` ${raw(RETURNED)} := true;` : sql``
    }`
    return row.from ? sql`IF ${raw(`${row.from}_found`)} THEN ${returned} END IF;` : returned
  })
  if (beside) {
    // FULL JOIN: the step's row alone when the write returned none.
    declarations.push(`${RETURNED} boolean := false;`)
    const nulls = types.map((type) => raw(`NULL::${type}`))
    results.push(
      sql`IF NOT ${raw(RETURNED)} AND ${raw(`${beside.step}_found`)} THEN RETURN QUERY SELECT ${list([
        ...nulls,
        ...besideValues,
      ])}; END IF;`,
    )
  }
  const body = sql`DECLARE ${raw([...new Set(declarations)].join(' '))} BEGIN ${sql.join(
    [...statements, ...results],
    sql` `,
  )} END`
  const declared = entries({ ...columns, ...beside?.columns }).map(([column, type]) => `${column} ${type}`)
  return { body, values: [...read], columns: declared.join(', ') }
}
