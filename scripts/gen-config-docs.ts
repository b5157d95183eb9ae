/**
 * Writes the README's configuration table from the zod schema in
 * src/config.ts (`npm run docs:config`), so the docs cannot drift from the
 * code; a test fails when they do.
 */
import { readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { z } from 'zod'
import { configSchema } from '../src/config.js'
import { projectRoot } from '../src/paths.js'

export const readmePath = path.join(projectRoot, 'README.md')
const START = '<!-- config-table:start -->'
const END = '<!-- config-table:end -->'

interface PropertySchema {
  default?: unknown
  description?: string
  enum?: unknown[]
}

export function configTable(): string {
  const { properties } = z.toJSONSchema(configSchema, { io: 'input', unrepresentable: 'any' }) as {
    properties: Record<string, PropertySchema>
  }
  const rows = Object.entries(properties).map(([name, prop]) => {
    const fallback = prop.default === undefined ? '(unset)' : `\`${String(prop.default)}\``
    const choices = prop.enum ? ` One of: ${prop.enum.map((v) => `\`${String(v)}\``).join(', ')}.` : ''
    return `| \`${name}\` | ${fallback} | ${(prop.description ?? '').replace(/\|/g, '\\|')}${choices} |`
  })
  return ['| Variable | Default | Meaning |', '|---|---|---|', ...rows].join('\n')
}

/** The README with its table replaced by the current one. */
export function readmeWithConfigTable(readme: string): string {
  const start = readme.indexOf(START)
  const end = readme.indexOf(END)
  if (start === -1 || end < start) throw new Error(`README.md lacks ${START} ... ${END}`)
  return `${readme.slice(0, start + START.length)}\n${configTable()}\n${readme.slice(end)}`
}

if (import.meta.url === `file://${process.argv[1]}`) {
  writeFileSync(readmePath, readmeWithConfigTable(readFileSync(readmePath, 'utf8')))
  console.log('README.md configuration table updated')
}
