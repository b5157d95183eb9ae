/**
 * Generates TypeScript types from lexicons/ into src/lexicon/types/, one
 * module per lexicon document (like @atproto/lex-cli, without its server
 * scaffolding). `npm run gen:types` rewrites them; a test fails when the
 * checked-in files drift from the lexicons.
 */
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import type { LexiconDoc, LexUserType } from '@atproto/lexicon'
import { loadLexiconDocs } from '../src/xrpc/lexicons.js'
import { projectRoot } from '../src/paths.js'

export const typesDir = path.join(projectRoot, 'src', 'lexicon', 'types')

type Schema = { type: string; [key: string]: unknown }

const pascal = (name: string) => name.charAt(0).toUpperCase() + name.slice(1)
const moduleAlias = (nsid: string) => nsid.split('.').map(pascal).join('')

export function generate(docs: LexiconDoc[]): Map<string, string> {
  const files = new Map<string, string>()
  for (const doc of docs) {
    const imports = new Set<string>()
    const typeRef = (ref: string): string => {
      const [nsid, name = 'main'] = ref.startsWith('#') ? [doc.id, ref.slice(1)] : ref.split('#')
      const local = name === 'main' ? 'Main' : pascal(name)
      if (nsid === doc.id || nsid === '') return local
      imports.add(nsid as string)
      return `${moduleAlias(nsid as string)}.${local}`
    }
    const fullRef = (ref: string) => (ref.startsWith('#') ? `${doc.id}${ref}` : ref)

    const typeOf = (schema: Schema, indent: string): string => {
      switch (schema.type) {
        case 'string': {
          const known = (schema.knownValues ?? schema.enum) as string[] | undefined
          if (!known) return 'string'
          const literals = known.map((v) => JSON.stringify(v)).join(' | ')
          return schema.enum ? literals : `${literals} | (string & {})`
        }
        case 'integer':
          return 'number'
        case 'boolean':
          return 'boolean'
        case 'bytes':
          return 'Uint8Array'
        case 'unknown':
          return 'unknown'
        case 'array':
          return `Array<${typeOf(schema.items as Schema, indent)}>`
        case 'ref':
          return typeRef(schema.ref as string)
        case 'union':
          return (schema.refs as string[])
            .map((r) => `(${typeRef(r)} & { $type: ${JSON.stringify(fullRef(r))} })`)
            .join(' | ')
        case 'object':
        case 'params':
          return objectBody(schema, indent)
        default:
          throw new Error(`${doc.id}: unsupported lexicon type ${schema.type}`)
      }
    }
    const objectBody = (schema: Schema, indent: string): string => {
      const props = (schema.properties ?? {}) as Record<string, Schema>
      const required = new Set((schema.required ?? []) as string[])
      const lines = Object.entries(props).map(([name, prop]) => {
        const doc = prop.description ? `${indent}  /** ${String(prop.description)} */\n` : ''
        const opt = required.has(name) ? '' : '?'
        return `${doc}${indent}  ${name}${opt}: ${typeOf(prop, `${indent}  `)}`
      })
      return lines.length ? `{\n${lines.join('\n')}\n${indent}}` : 'Record<string, never>'
    }
    const declare = (name: string, schema: Schema | undefined, description?: string): string => {
      const comment = description ? `/** ${description} */\n` : ''
      if (!schema) return `${comment}export type ${name} = undefined\n`
      const body = typeOf(schema, '')
      return schema.type === 'object' || schema.type === 'params'
        ? body === 'Record<string, never>'
          ? `${comment}export type ${name} = Record<string, never>\n`
          : `${comment}export interface ${name} ${body}\n`
        : `${comment}export type ${name} = ${body}\n`
    }

    const parts: string[] = []
    for (const [defName, def] of Object.entries(doc.defs) as Array<[string, LexUserType]>) {
      const d = def as unknown as Schema & { description?: string }
      if (d.type === 'query' || d.type === 'procedure' || d.type === 'subscription') {
        parts.push(declare('Params', (d.parameters as Schema | undefined) ?? { type: 'params' }))
        if (d.type === 'procedure') {
          parts.push(declare('Input', (d.input as { schema?: Schema } | undefined)?.schema))
        }
        if (d.type === 'subscription') {
          parts.push(
            declare('Message', (d.message as { schema?: Schema } | undefined)?.schema, 'One event of the stream.'),
          )
        } else {
          parts.push(declare('Output', (d.output as { schema?: Schema } | undefined)?.schema))
        }
      } else {
        parts.push(declare(defName === 'main' ? 'Main' : pascal(defName), d, d.description))
      }
    }
    const header = [
      `// Generated from lexicons/${doc.id}.json by scripts/gen-lexicon-types.ts. Do not edit.`,
      ...[...imports].sort().map((nsid) => `import type * as ${moduleAlias(nsid)} from './${nsid}.js'`),
    ].join('\n')
    files.set(`${doc.id}.ts`, `${header}\n\n${parts.join('\n')}`)
  }
  files.set('index.ts', methodMap(docs))
  return files
}

/**
 * index.ts: the NSID of each XRPC method (query or procedure), by its name,
 * and what each one takes and gives, so that handlers, the client and tests
 * are typed by NSID; and the same of each subscription (a WebSocket event
 * stream: its params and one message), which is not an HTTP route.
 */
function methodMap(docs: LexiconDoc[]): string {
  const methods = docs.flatMap((doc) => {
    const def = doc.defs.main
    if (def?.type !== 'query' && def?.type !== 'procedure') return []
    const name = doc.id.split('.').at(-1) as string
    return [{ nsid: doc.id, name, alias: moduleAlias(doc.id), type: def.type, encoding: def.output?.encoding }]
  })
  const subscriptions = docs.flatMap((doc) =>
    doc.defs.main?.type === 'subscription' ? [{ nsid: doc.id, alias: moduleAlias(doc.id) }] : [],
  )
  const names = methods.map((m) => m.name)
  const repeated = names.find((name, i) => names.indexOf(name) !== i)
  if (repeated) throw new Error(`two methods are named ${repeated}: NSID constants need distinct names`)
  const lines = [
    '// Generated from lexicons/ by scripts/gen-lexicon-types.ts. Do not edit.',
    // In the documents' order (by file name), as they were loaded.
    ...docs
      .filter((doc) => [...methods, ...subscriptions].some((m) => m.nsid === doc.id))
      .map((doc) => `import type * as ${moduleAlias(doc.id)} from './${doc.id}.js'`),
    '',
    '/** The NSID of each XRPC method, by its name. */',
    'export const NSID = {',
    ...methods.map((m) => `  ${m.name}: ${JSON.stringify(m.nsid)},`),
    '} as const',
    '',
    'export type Nsid = (typeof NSID)[keyof typeof NSID]',
    '',
    '/**',
    " * What each method takes and gives. `encoding` is its output's: an event",
    " * stream's (`text/event-stream`) `output` is one event.",
    ' */',
    'export interface Methods {',
    ...methods.map(
      (m) =>
        `  ${JSON.stringify(m.nsid)}: { type: ${JSON.stringify(m.type)}; encoding: ${JSON.stringify(m.encoding ?? null)}; ` +
        `params: ${m.alias}.Params; input: ${m.type === 'procedure' ? `${m.alias}.Input` : 'undefined'}; output: ${m.alias}.Output }`,
    ),
    '}',
    '',
    '/** What each subscription takes (its params) and sends (one message: an event). */',
    'export interface Subscriptions {',
    ...subscriptions.map(
      (s) => `  ${JSON.stringify(s.nsid)}: { params: ${s.alias}.Params; message: ${s.alias}.Message }`,
    ),
    '}',
  ]
  return `${lines.join('\n')}\n`
}

function main() {
  const files = generate(loadLexiconDocs())
  rmSync(typesDir, { recursive: true, force: true })
  mkdirSync(typesDir, { recursive: true })
  for (const [name, text] of files) writeFileSync(path.join(typesDir, name), text)
  console.log(
    `wrote ${files.size} files to ${path.relative(projectRoot, typesDir)}: ${readdirSync(typesDir).join(', ')}`,
  )
}

if (import.meta.url === `file://${process.argv[1]}`) main()
