import { readdirSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { projectRoot } from '../../src/paths.js'

const srcDir = path.join(projectRoot, 'src')

/**
 * What each folder of src/ may import of the rest of src/ (the README's
 * layout list says why), from the bottom up: each names only parts listed
 * before it, so the rules form a DAG. Files at the top of src/ are parts too:
 * server.ts and main.ts wire everything and are not listed; the others are
 * held by the part graph's acyclicity below.
 */
const MAY_IMPORT: Record<string, string[]> = {
  lexicon: [],
  client: ['lexicon'],
  mls: [],
  bluesky: [],
  db: ['config.ts', 'startup-error.ts'],
  idempotency: ['db'],
  services: ['db', 'idempotency', 'lexicon'],
  events: ['db', 'services'],
  xrpc: ['config.ts', 'context.ts', 'db', 'idempotency', 'lexicon', 'paths.ts', 'services'],
  api: ['events', 'idempotency', 'lexicon', 'mls', 'services', 'xrpc'],
  workers: ['context.ts', 'idempotency', 'metrics.ts', 'services'],
}

/** The methods of the lexicons, by name: a handler's file is named after its method. */
const METHODS = new Set(
  readdirSync(path.join(projectRoot, 'lexicons')).map((file) => file.replace(/^blue\.catbird\.mls\.|\.json$/g, '')),
)

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name)
    return entry.isDirectory() ? sourceFiles(full) : entry.name.endsWith('.ts') ? [full] : []
  })
}

const files = sourceFiles(srcDir)

/** The part of src/ a file belongs to: its top folder, or its own name at the top. */
const partOf = (file: string) => path.relative(srcDir, file).split(path.sep)[0]!

/** The files of src/ a file imports (relative imports, type-only ones included). */
function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8')
  return [...text.matchAll(/(?:from|import) '(\.{1,2}\/[^']+)'/g)].map((m) =>
    path.resolve(path.dirname(file), m[1]!).replace(/\.js$/, '.ts'),
  )
}

const imports = new Map(files.map((file) => [file, importsOf(file)]))

/** The cycles of a graph, each as one path that comes back to its start (one per strongly connected part). */
function cycles(graph: Map<string, string[]>): string[][] {
  const found: string[][] = []
  const state = new Map<string, 'open' | 'done'>()
  const trail: string[] = []
  const visit = (node: string) => {
    state.set(node, 'open')
    trail.push(node)
    for (const next of graph.get(node) ?? []) {
      if (state.get(next) === 'open') found.push([...trail.slice(trail.indexOf(next)), next])
      else if (!state.has(next)) visit(next)
    }
    trail.pop()
    state.set(node, 'done')
  }
  for (const node of graph.keys()) if (!state.has(node)) visit(node)
  return found
}

const relative = (file: string) => path.relative(projectRoot, file)

describe('the layout of src/', () => {
  it('keeps each folder to what it may import', () => {
    const breaches = files.flatMap((file) => {
      const allowed = MAY_IMPORT[partOf(file)]
      if (allowed === undefined) return []
      return (imports.get(file) ?? [])
        .map(partOf)
        .filter((part) => part !== partOf(file) && !allowed.includes(part))
        .map((part) => `${relative(file)} imports src/${part}`)
    })
    expect(breaches).toEqual([])
  })

  it('has rules that form a DAG: each folder imports only folders listed before it', () => {
    const order = Object.keys(MAY_IMPORT)
    const upward = order.flatMap((folder, i) =>
      MAY_IMPORT[folder]!.filter((part) => order.includes(part) && order.indexOf(part) >= i).map(
        (part) => `${folder} -> ${part}`,
      ),
    )
    expect(upward).toEqual([])
  })

  it('has no import cycle between its parts (folders and top-level files)', () => {
    const parts = new Map<string, string[]>()
    for (const [file, imported] of imports) {
      const from = partOf(file)
      const to = new Set([...(parts.get(from) ?? []), ...imported.map(partOf).filter((part) => part !== from)])
      parts.set(from, [...to])
    }
    expect(cycles(parts).map((cycle) => cycle.join(' -> '))).toEqual([])
  })

  it('has no import cycle between its files', () => {
    expect(cycles(imports).map((cycle) => cycle.map(relative).join(' -> '))).toEqual([])
  })

  it('keeps each handler in a feature folder of src/api, named after its method (what features share is at the top)', () => {
    const misplaced = files
      .filter((file) => partOf(file) === 'api')
      .map((file) => path.relative(path.join(srcDir, 'api'), file).split(path.sep))
      .filter((parts) => parts.length > 1 && parts[1] !== 'index.ts' && !METHODS.has(parts[1]!.replace(/\.ts$/, '')))
      .map((parts) => parts.join('/'))
    expect(misplaced).toEqual([])
  })

  it('is described in the README: every folder, feature and top-level file of src/', () => {
    const readme = readFileSync(path.join(projectRoot, 'README.md'), 'utf8')
    const layout = readme.slice(readme.indexOf('Layout of `src/`'), readme.indexOf('`scripts/` holds'))
    const entries = readdirSync(srcDir, { withFileTypes: true })
    const features = readdirSync(path.join(srcDir, 'api'), { withFileTypes: true }).filter((e) => e.isDirectory())
    const unnamed = [
      ...entries.filter((e) =>
        e.isDirectory() ? !layout.includes(`\`src/${e.name}\``) : !layout.includes(`\`${e.name}\``),
      ),
      ...features.filter((e) => !layout.includes(`\`api/${e.name}\``)),
    ]
    expect(unnamed.map((e) => e.name)).toEqual([])
    // Every folder has its import rule here, and no rule names a folder that is gone.
    expect(
      entries
        .filter((e) => e.isDirectory())
        .map((e) => e.name)
        .sort(),
    ).toEqual(Object.keys(MAY_IMPORT).sort())
  })
})
