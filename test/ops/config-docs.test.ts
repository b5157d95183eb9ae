import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { envExample, envExamplePath, readmePath, readmeWithConfigTable } from '../../scripts/gen-config-docs.js'

describe('README configuration table', () => {
  it('matches the config schema (run `npm run docs:config` after changing src/config.ts)', () => {
    const readme = readFileSync(readmePath, 'utf8')
    expect(readme).toBe(readmeWithConfigTable(readme))
    expect(readme).toMatch(/\| `WELCOME_GRACE_SECONDS` \| `300` \|/)
  })

  it('and .env.example match it too, every variable documented, nothing set: no placeholder passes for a value', () => {
    const example = readFileSync(envExamplePath, 'utf8')
    expect(example).toBe(envExample())
    expect(example).toMatch(/^#WELCOME_GRACE_SECONDS=300$/m)
    // What compose requires is left for the operator to set, so compose stops on an unedited copy.
    expect(example).toMatch(
      /Required by docker compose: uncomment it and set it, e\.g\. `did:web:mls\.example\.com`\.\n#SERVICE_DID=\n/,
    )
    expect(example).toMatch(/Required by docker compose: uncomment it and set it\.\n#POSTGRES_PASSWORD=\n/)
    expect(example.split('\n').filter((line) => line !== '' && !line.startsWith('#'))).toEqual([])
  })
})
