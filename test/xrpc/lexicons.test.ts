import { existsSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { generate, typesDir } from '../../scripts/gen-lexicon-types.js'
import { projectRoot } from '../../src/paths.js'
import { loadLexiconDocs } from '../../src/xrpc/lexicons.js'

const referenceDir = path.join(projectRoot, '..', 'shared', 'reference', 'lexicons')

/** The wire contract: everything but the prose. */
function withoutDescriptions(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutDescriptions)
  if (value && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value)
        .filter(([key]) => key !== 'description')
        .map(([key, v]) => [key, withoutDescriptions(v)]),
    )
  }
  return value
}

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

describe('lexicons', () => {
  const ours = new Map(loadLexiconDocs().map((doc) => [doc.id, doc]))

  it('stay wire-compatible with the reference lexicons real clients are generated from', () => {
    expect(existsSync(referenceDir), `reference lexicons expected at ${referenceDir}`).toBe(true)
    const reference = loadLexiconDocs(referenceDir)
    expect(reference.length).toBeGreaterThanOrEqual(14)
    for (const ref of reference) {
      const doc = ours.get(ref.id)
      expect(doc, ref.id).toBeDefined()
      expectContains(withoutDescriptions(ref), withoutDescriptions(doc), ref.id)
    }
  })

  it('add only optional fields: nothing required that the reference does not require', () => {
    const reference = new Map(loadLexiconDocs(referenceDir).map((doc) => [doc.id, doc]))
    for (const [id, doc] of ours) {
      const ref = reference.get(id)
      if (!ref) continue
      for (const [name, def] of Object.entries(doc.defs)) {
        const refDef = (ref.defs as Record<string, unknown>)[name]
        const required = (d: unknown) => {
          const def = d as { required?: string[]; input?: { schema?: { required?: string[] } }; parameters?: { required?: string[] } }
          return [...(def?.required ?? []), ...(def?.input?.schema?.required ?? []), ...(def?.parameters?.required ?? [])]
        }
        expect(required(def), `${id}#${name}`).toEqual(required(refDef))
      }
    }
  })

  it('match the generated TypeScript types (run `npm run gen:types` after editing lexicons/)', () => {
    for (const [file, text] of generate(loadLexiconDocs())) {
      expect(readFileSync(path.join(typesDir, file), 'utf8'), file).toBe(text)
    }
  })
})
