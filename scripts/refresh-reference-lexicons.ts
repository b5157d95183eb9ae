/**
 * Refreshes a fixture of upstream `blue.catbird.mls.*` lexicon documents from
 * a folder of them: test/fixtures/reference-lexicons/ (the seed-era set, with
 * getWelcome/confirmWelcome and the SSE stream) by default, or
 * reference-lexicons-client/ (the set the client builds of Nov 2025 to Feb
 * 2026 were generated from):
 *
 *   npm run fixtures:lexicons -- <folder> [reference-lexicons-client]
 *
 * The fixture keeps the wire contract real clients are generated from (ids,
 * types, field names, constraints, required lists, error names) and drops the
 * prose, so the project carries the facts without copying upstream wording.
 * A SOURCE.txt in the folder (where the documents came from) is carried over.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { projectRoot } from '../src/paths.js'
import { loadLexiconDocs } from '../src/xrpc/lexicons.js'

const fixturesDir = path.join(projectRoot, 'test', 'fixtures')
export const referenceFixtureDir = path.join(fixturesDir, 'reference-lexicons')
/** The client-era set: every method the client builds of Nov 2025 to Feb 2026 were generated from. */
export const clientReferenceFixtureDir = path.join(fixturesDir, 'reference-lexicons-client')
const fixtureDirs = [referenceFixtureDir, clientReferenceFixtureDir]
export const SOURCE_NOTE = 'SOURCE.md'

/**
 * A lexicon value without its prose: every string `description`. A field that
 * is *named* description (an object schema under `properties`) is contract and stays.
 */
export function wireContract(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(wireContract)
  if (value && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value)
        .filter(([key, v]) => !(key === 'description' && typeof v === 'string'))
        .map(([key, v]) => [key, wireContract(v)]),
    )
  }
  return value
}

export const fixtureText = (doc: unknown) => `${JSON.stringify(wireContract(doc), null, 2)}\n`

function sourceNote(origin: string, command: string): string {
  return [
    '# Reference lexicons (wire contract)',
    '',
    'The upstream `blue.catbird.mls.*` lexicons that real clients are generated from, with their',
    'description texts removed: ids, types, field names, constraints, required lists and error',
    'names only. `test/xrpc/lexicons.test.ts` checks that `lexicons/` stays wire-compatible with them.',
    '',
    'Where they came from:',
    '',
    origin.trim(),
    '',
    'Refresh from a folder holding the upstream documents (and their SOURCE.txt):',
    `\`${command}\`.`,
    '',
  ].join('\n')
}

function main(folder: string | undefined, fixture = path.basename(referenceFixtureDir)): void {
  const names = fixtureDirs.map((dir) => path.basename(dir))
  if (!folder || !names.includes(fixture)) {
    throw new Error(
      `usage: npm run fixtures:lexicons -- <folder of upstream lexicon documents> [${names.slice(1).join(' | ')}]`,
    )
  }
  const into = path.join(fixturesDir, fixture)
  const from = path.resolve(process.env.INIT_CWD ?? process.cwd(), folder)
  const docs = loadLexiconDocs(from)
  if (docs.length === 0) throw new Error(`no lexicon documents (*.json) in ${from}`)
  const sourceFile = path.join(from, 'SOURCE.txt')
  const origin = existsSync(sourceFile) ? readFileSync(sourceFile, 'utf8') : `a copy at ${from} (no SOURCE.txt given)`

  mkdirSync(into, { recursive: true })
  for (const file of readdirSync(into)) rmSync(path.join(into, file))
  for (const doc of docs) writeFileSync(path.join(into, `${doc.id}.json`), fixtureText(doc))
  const command = `npm run fixtures:lexicons -- <folder>${into === referenceFixtureDir ? '' : ` ${fixture}`}`
  writeFileSync(path.join(into, SOURCE_NOTE), sourceNote(origin, command))
  console.log(`wrote ${docs.length} documents to ${path.relative(projectRoot, into)}`)
}

if (import.meta.url === `file://${process.argv[1]}`) {
  try {
    main(process.argv[2], process.argv[3])
  } catch (err) {
    console.error(err instanceof Error ? err.message : String(err))
    process.exit(1)
  }
}
