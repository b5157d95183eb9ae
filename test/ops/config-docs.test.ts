import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { envExample, envExamplePath, readmePath, readmeWithConfigTable } from '../../scripts/gen-config-docs.js'

describe('README configuration table', () => {
  it('matches the config schema (run `npm run docs:config` after changing src/config.ts)', () => {
    const readme = readFileSync(readmePath, 'utf8')
    expect(readme).toBe(readmeWithConfigTable(readme))
    expect(readme).toMatch(/\| `WELCOME_GRACE_SECONDS` \| `300` \|/)
  })

  it('and .env.example match it too, every variable documented, what compose requires set', () => {
    const example = readFileSync(envExamplePath, 'utf8')
    expect(example).toBe(envExample())
    expect(example).toMatch(/^SERVICE_DID=did:web:mls\.example\.com$/m)
    expect(example).toMatch(/^POSTGRES_PASSWORD='.+'$/m)
    expect(example).toMatch(/^#WELCOME_GRACE_SECONDS=300$/m)
  })
})
