/**
 * Writes the README's configuration table and .env.example from the zod
 * schema in src/config.ts (`npm run docs:config`), so the docs cannot drift
 * from the code; a test fails when they do.
 */
import { readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { z } from 'zod'
import { configSchema } from '../src/config.js'
import { projectRoot } from '../src/paths.js'

export const readmePath = path.join(projectRoot, 'README.md')
export const envExamplePath = path.join(projectRoot, '.env.example')
const START = '<!-- config-table:start -->'
const END = '<!-- config-table:end -->'
const REQUIRED = 'Required by docker compose: uncomment it and set it'

interface PropertySchema {
  default?: unknown
  description?: string
  enum?: unknown[]
  examples?: unknown[]
}

function properties(): Array<[string, PropertySchema]> {
  const { properties } = z.toJSONSchema(configSchema, { io: 'input', unrepresentable: 'any' }) as {
    properties: Record<string, PropertySchema>
  }
  return Object.entries(properties)
}

const choices = (prop: PropertySchema) =>
  prop.enum ? ` One of: ${prop.enum.map((v) => `\`${String(v)}\``).join(', ')}.` : ''

export function configTable(): string {
  const rows = properties().map(([name, prop]) => {
    const fallback = prop.default === undefined ? '(unset)' : `\`${String(prop.default)}\``
    return `| \`${name}\` | ${fallback} | ${(prop.description ?? '').replace(/\|/g, '\\|')}${choices(prop)} |`
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

/** Variables docker-compose.yml refuses to run without (`${NAME:?message}`). */
function requiredByCompose(): Set<string> {
  const compose = readFileSync(path.join(projectRoot, 'docker-compose.yml'), 'utf8')
  return new Set(Array.from(compose.matchAll(/\$\{(\w+):\?/g), (match) => match[1] as string))
}

/**
 * Every setting with its meaning and default, commented out. Those compose
 * requires are commented out too, and empty: a copy of the file that nobody
 * edited makes compose stop and name them, rather than run on a placeholder.
 */
export function envExample(): string {
  const required = requiredByCompose()
  const blocks = properties().map(([name, prop]) => {
    if (required.has(name)) {
      const example = prop.examples?.[0] === undefined ? '' : `, e.g. \`${String(prop.examples[0])}\``
      return `# ${prop.description ?? ''}${choices(prop)} ${REQUIRED}${example}.\n#${name}=\n`
    }
    return `# ${prop.description ?? ''}${choices(prop)}\n#${name}=${String(prop.examples?.[0] ?? prop.default ?? '')}\n`
  })
  return [
    '# Settings of catbird-mls-ds: copy this file to .env and edit it. `npm start`,',
    '# `npm run token` and `docker compose` read .env; variables set in the environment',
    "# win. Quote a value with spaces or # in it: NAME='value'. Every line is commented out:",
    '# `npm start` needs none of them; `docker compose` needs the two marked as required.',
    '# Generated from src/config.ts by `npm run docs:config`; see README "Configuration".',
    '',
    `# Password of the PostgreSQL that docker compose runs (any characters). ${REQUIRED}.`,
    '#POSTGRES_PASSWORD=',
    '',
    blocks.join('\n'),
  ].join('\n')
}

if (import.meta.url === `file://${process.argv[1]}`) {
  writeFileSync(readmePath, readmeWithConfigTable(readFileSync(readmePath, 'utf8')))
  writeFileSync(envExamplePath, envExample())
  console.log('README.md configuration table and .env.example updated')
}
