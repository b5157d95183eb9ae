import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { readmePath, readmeWithConfigTable } from '../../scripts/gen-config-table.js'

describe('README configuration table', () => {
  it('matches the config schema (run `npm run docs:config` after changing src/config.ts)', () => {
    const readme = readFileSync(readmePath, 'utf8')
    expect(readme).toBe(readmeWithConfigTable(readme))
    expect(readme).toMatch(/\| `WELCOME_GRACE_SECONDS` \| `300` \|/)
  })
})
