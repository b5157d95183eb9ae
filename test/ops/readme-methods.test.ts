import { readdirSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { notImplemented } from '../../src/api/index.js'
import { projectRoot } from '../../src/paths.js'

const PREFIX = 'blue.catbird.mls.'

/** The methods (queries, procedures, subscriptions) of a folder of lexicons, by short name. */
function methodsIn(folder: string): Set<string> {
  const names = new Set<string>()
  for (const file of readdirSync(path.join(projectRoot, folder))) {
    if (!file.startsWith(PREFIX) || !file.endsWith('.json')) continue
    const doc = JSON.parse(readFileSync(path.join(projectRoot, folder, file), 'utf8')) as {
      defs: { main?: { type: string } }
    }
    if (['query', 'procedure', 'subscription'].includes(doc.defs.main?.type ?? '')) {
      names.add(file.slice(PREFIX.length, -'.json'.length))
    }
  }
  return names
}

/** The README's Methods section: its table rows (name, contract), and the methods it says answer 501. */
function readmeMethods(): { rows: Array<{ name: string; contract: string }>; notImplemented: string[] } {
  const readme = readFileSync(path.join(projectRoot, 'README.md'), 'utf8')
  const section = /\n## Methods\n([\s\S]*?)\n## /.exec(readme)?.[1]
  const listed = section && /^\*\*Not implemented yet\*\*[^:]*\):(.*)$/m.exec(section)?.[1]
  if (!section || listed === undefined) throw new Error('README.md lacks its Methods section or its 501 list')
  return {
    rows: [...section.matchAll(/^\| `(\w+)` \| ([\w-]+) \| .* \|$/gm)].map(([, name, contract]) => ({
      name: name as string,
      contract: contract as string,
    })),
    notImplemented: [...(listed.split('.')[0] as string).matchAll(/`(\w+)`/g)].map(([, name]) => name as string),
  }
}

describe("README's methods", () => {
  const { rows, notImplemented: listed } = readmeMethods()
  const seedEra = methodsIn('test/fixtures/reference-lexicons')
  const clientEra = methodsIn('test/fixtures/reference-lexicons-client')

  it('are every method of lexicons/, each once: in a table, or among those answering 501', () => {
    expect([...rows.map((row) => row.name), ...listed].sort()).toEqual([...methodsIn('lexicons')].sort())
  })

  it("name each method's contract: the client sets that have it", () => {
    for (const { name, contract } of rows) {
      const expected = seedEra.has(name) ? (clientEra.has(name) ? 'both' : 'seed-era') : 'client-era'
      expect({ name, contract }).toEqual({ name, contract: expected })
    }
  })

  it('list as 501 exactly the methods that answer it', () => {
    expect(listed.sort()).toEqual(notImplemented.map((nsid) => nsid.slice(PREFIX.length)).sort())
  })
})
