import { readdirSync, readFileSync } from 'node:fs'
import path from 'node:path'
import type { LexiconDoc } from '@atproto/lexicon'
import { describe, expect, it } from 'vitest'
import { generate, typesDir } from '../../scripts/gen-lexicon-types.js'
import {
  fixtureText,
  laterReferenceFixtureDir,
  referenceFixtureDir,
  SOURCE_NOTE,
  wireContract,
} from '../../scripts/refresh-reference-lexicons.js'
import { loadLexiconDocs } from '../../src/xrpc/lexicons.js'

/** Asserts that everything `reference` says, `ours` says the same way (ours may add). */
function expectContains(reference: unknown, ours: unknown, at: string): void {
  if (Array.isArray(reference)) {
    expect(Array.isArray(ours), at).toBe(true)
    if (at.endsWith('.errors')) {
      const names = (ours as Array<{ name: string }>).map((e) => e.name)
      for (const e of reference as Array<{ name: string }>) expect(names, at).toContain(e.name)
    } else {
      expect(ours, at).toEqual(reference)
    }
  } else if (reference && typeof reference === 'object') {
    expect(ours, at).toBeTypeOf('object')
    for (const [key, value] of Object.entries(reference)) {
      expectContains(value, (ours as Record<string, unknown>)[key], `${at}.${key}`)
    }
  } else {
    expect(ours, at).toBe(reference)
  }
}

/**
 * The later upstream lexicons name two errors by kind; this server answers
 * them with the names all its methods use (and the first set declares).
 */
const LATER_ERROR_NAMES: Record<string, string> = { Unauthorized: 'NotMember', NotFound: 'ConvoNotFound' }

/** A later reference document with its error names as this server answers them. */
function withOurErrorNames(doc: LexiconDoc): LexiconDoc {
  const main = doc.defs.main as { errors?: Array<{ name: string }> } | undefined
  if (!main?.errors) return doc
  const errors = main.errors.map((e) => ({ ...e, name: LATER_ERROR_NAMES[e.name] ?? e.name }))
  return { ...doc, defs: { ...doc.defs, main: { ...main, errors } as LexiconDoc['defs'][string] } }
}

describe('lexicons', () => {
  const ours = new Map(loadLexiconDocs().map((doc) => [doc.id, doc]))

  const reference = loadLexiconDocs(referenceFixtureDir)
  const later = loadLexiconDocs(laterReferenceFixtureDir)

  it('stay wire-compatible with the reference lexicons real clients are generated from', () => {
    expect(reference.length).toBeGreaterThanOrEqual(14)
    for (const ref of reference) {
      const doc = ours.get(ref.id)
      expect(doc, ref.id).toBeDefined()
      expectContains(ref, wireContract(doc), ref.id)
    }
  })

  it('stay wire-compatible with the later reference lexicons of GroupInfo and external commits', () => {
    expect(later.map((doc) => doc.id)).toEqual([
      'blue.catbird.mls.getGroupInfo',
      'blue.catbird.mls.processExternalCommit',
      'blue.catbird.mls.updateGroupInfo',
    ])
    for (const ref of later) {
      const doc = ours.get(ref.id)
      expect(doc, ref.id).toBeDefined()
      expectContains(withOurErrorNames(ref), wireContract(doc), ref.id)
    }
  })

  it('add only optional fields: nothing required that the reference does not require', () => {
    const referenceById = new Map([...reference, ...later].map((doc) => [doc.id, doc]))
    for (const [id, doc] of ours) {
      const ref = referenceById.get(id)
      if (!ref) continue
      for (const [name, def] of Object.entries(doc.defs)) {
        const refDef = (ref.defs as Record<string, unknown>)[name]
        const required = (d: unknown) => {
          const def = d as {
            required?: string[]
            input?: { schema?: { required?: string[] } }
            parameters?: { required?: string[] }
          }
          return [
            ...(def?.required ?? []),
            ...(def?.input?.schema?.required ?? []),
            ...(def?.parameters?.required ?? []),
          ]
        }
        expect(required(def), `${id}#${name}`).toEqual(required(refDef))
      }
    }
  })

  it('are checked against a fixture of the contract alone, with its origin noted', () => {
    // As `npm run fixtures:lexicons` writes it: no prose, but fields named
    // `description` (conversation metadata) are contract and stay.
    for (const dir of [referenceFixtureDir, laterReferenceFixtureDir]) {
      for (const file of readdirSync(dir).filter((f) => f.endsWith('.json'))) {
        const text = readFileSync(path.join(dir, file), 'utf8')
        expect(text, file).toBe(fixtureText(JSON.parse(text)))
      }
      expect(readFileSync(path.join(dir, SOURCE_NOTE), 'utf8')).toMatch(/commit [0-9a-f]{40}/)
    }
    const defs = reference.find((doc) => doc.id === 'blue.catbird.mls.defs')?.defs as Record<
      string,
      { properties?: object }
    >
    expect(Object.keys(defs.convoMetadata?.properties ?? {})).toEqual(['name', 'description'])
  })

  it('match the generated TypeScript types (run `npm run gen:types` after editing lexicons/)', () => {
    for (const [file, text] of generate(loadLexiconDocs())) {
      expect(readFileSync(path.join(typesDir, file), 'utf8'), file).toBe(text)
    }
  })
})
