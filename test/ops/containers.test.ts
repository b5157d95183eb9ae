import { readFileSync } from 'node:fs'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { parse } from 'yaml'
import { configSchema } from '../../src/config.js'
import { projectRoot } from '../../src/paths.js'

interface ComposeService {
  image?: string
  build?: string
  environment?: Record<string, string>
  depends_on?: Record<string, { condition: string }>
  healthcheck?: { test: string[] }
  volumes?: string[]
}

const compose = parse(readFileSync(path.join(projectRoot, 'docker-compose.yml'), 'utf8')) as {
  services: Record<string, ComposeService>
  volumes: Record<string, unknown>
}
const dockerfile = readFileSync(path.join(projectRoot, 'Dockerfile'), 'utf8')

describe('docker compose', () => {
  it('runs the server after a healthy PostgreSQL with a named volume, configured by environment', () => {
    const { postgres, server } = compose.services
    expect(postgres?.image).toMatch(/^postgres:\d+/)
    expect(postgres?.healthcheck?.test.join(' ')).toContain('pg_isready')
    const volume = postgres?.volumes?.[0]?.split(':')[0]
    expect(volume && volume in compose.volumes).toBe(true)
    expect(server?.build).toBe('.')
    expect(server?.depends_on?.postgres?.condition).toBe('service_healthy')
    expect(server?.environment?.DATABASE_URL).toMatch(/^postgres:\/\/.+@postgres:5432\//)
  })

  it('sets only variables the server knows', () => {
    const known = Object.keys(configSchema.shape)
    for (const name of Object.keys(compose.services.server?.environment ?? {})) expect(known).toContain(name)
  })
})

describe('Dockerfile', () => {
  it('builds in stages and runs as a non-root user with a health check', () => {
    expect(dockerfile.match(/^FROM /gm)?.length).toBeGreaterThanOrEqual(2)
    expect(dockerfile).toMatch(/^USER node$/m)
    expect(dockerfile).toMatch(/^HEALTHCHECK .*\n?.*\/xrpc\/_health/m)
    expect(dockerfile).toMatch(/^CMD \["node", "dist\/src\/main\.js"\]$/m)
    // What the server reads at run time from its root.
    for (const file of ['package.json', 'lexicons', 'dist', 'node_modules']) {
      expect(dockerfile).toMatch(new RegExp(`^COPY .*${file}`, 'm'))
    }
  })
})
