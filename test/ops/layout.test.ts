import { readdirSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { projectRoot } from '../../src/paths.js'

const srcDir = path.join(projectRoot, 'src')

// What each folder of src/ may import of the rest of src/ (the README's layout list says why).
// Files at the top of src/ (server.ts, main.ts, ...) wire everything and are not listed.
const MAY_IMPORT: Record<string, string[]> = {
  lexicon: [],
  client: ['lexicon'],
  mls: [],
  db: ['config.ts', 'startup-error.ts'],
  services: ['db', 'lexicon', 'idempotency'],
  idempotency: ['context.ts', 'db', 'xrpc'],
  events: ['db', 'services'],
  xrpc: ['config.ts', 'context.ts', 'db', 'idempotency', 'lexicon', 'paths.ts', 'services'],
  api: ['events', 'idempotency', 'lexicon', 'mls', 'services', 'xrpc'],
  workers: ['context.ts', 'idempotency', 'metrics.ts', 'services'],
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name)
    return entry.isDirectory() ? sourceFiles(full) : entry.name.endsWith('.ts') ? [full] : []
  })
}

/** The part of src/ a file belongs to: its top folder, or its own name at the top. */
const partOf = (file: string) => path.relative(srcDir, file).split(path.sep)[0]!

/** Every part of src/ a file imports (relative imports), other than its own. */
function importedParts(file: string): string[] {
  const text = readFileSync(file, 'utf8')
  const parts = [...text.matchAll(/from '(\.{1,2}\/[^']+)'/g)].map((m) =>
    partOf(path.resolve(path.dirname(file), m[1]!).replace(/\.js$/, '.ts')),
  )
  return parts.filter((part) => part !== partOf(file))
}

describe('the layout of src/', () => {
  it('keeps each folder to what it may import', () => {
    const breaches = sourceFiles(srcDir).flatMap((file) => {
      const allowed = MAY_IMPORT[partOf(file)]
      if (allowed === undefined) return []
      return importedParts(file)
        .filter((part) => !allowed.includes(part))
        .map((part) => `${path.relative(projectRoot, file)} imports src/${part}`)
    })
    expect(breaches).toEqual([])
  })

  it('is described in the README: every folder and top-level file of src/', () => {
    const readme = readFileSync(path.join(projectRoot, 'README.md'), 'utf8')
    const layout = readme.slice(readme.indexOf('Layout of `src/`'), readme.indexOf('`scripts/` holds'))
    const entries = readdirSync(srcDir, { withFileTypes: true })
    expect(entries.map((e) => e.name).sort()).toEqual(
      expect.arrayContaining([...Object.keys(MAY_IMPORT), 'server.ts', 'main.ts'].sort()),
    )
    const unnamed = entries.filter((e) =>
      e.isDirectory() ? !layout.includes(`\`src/${e.name}\``) : !layout.includes(`\`${e.name}\``),
    )
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
