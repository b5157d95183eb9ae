import { execFile } from 'node:child_process'
import { readFileSync } from 'node:fs'
import path from 'node:path'
import { parseEnv, promisify } from 'node:util'
import { DockerfileParser, type Instruction } from 'dockerfile-ast'
import { sql } from 'kysely'
import pg from 'pg'
import { describe, expect, inject, it } from 'vitest'
import { parse } from 'yaml'
import { configSchema, databaseUrl, listenUrl, loadConfig } from '../../src/config.js'
import { createDatabase } from '../../src/db/index.js'
import { projectRoot } from '../../src/paths.js'
import { freePort, startTestApp } from '../helpers/index.js'

const run = promisify(execFile)

interface ComposeService {
  image?: string
  build?: string
  env_file?: Array<{ path: string; required: boolean }>
  environment?: Record<string, string>
  depends_on?: Record<string, { condition: string }>
  healthcheck?: { test: string[] }
  volumes?: string[]
}

const compose = parse(readFileSync(path.join(projectRoot, 'docker-compose.yml'), 'utf8')) as {
  services: Record<string, ComposeService>
  volumes: Record<string, unknown>
}
const envExample = parseEnv(readFileSync(path.join(projectRoot, '.env.example'), 'utf8'))

/**
 * A service's environment as compose builds it from the operator's .env:
 * its env_file (.env) first, then its `environment`, interpolated the way
 * compose does for what this file uses: ${NAME}, ${NAME:-default}, ${NAME:?error}.
 */
function containerEnv(service: string, dotenv: Record<string, string | undefined>): Record<string, string | undefined> {
  const { env_file: envFile = [], environment = {} } = compose.services[service] ?? {}
  const interpolate = (value: string) =>
    value.replace(/\$\{(\w+)(?::([-?])([^}]*))?\}/g, (_match, name: string, op?: string, arg = '') => {
      const set = dotenv[name]
      if (set) return set
      if (op === '?') throw new Error(`${name}: ${arg}`)
      return op === '-' ? arg : ''
    })
  const fromFile = envFile.some((file) => file.path === '.env') ? dotenv : {}
  return {
    ...fromFile,
    ...Object.fromEntries(Object.entries(environment).map(([name, value]) => [name, interpolate(String(value))])),
  }
}

describe('docker compose', () => {
  it('runs the server after a healthy PostgreSQL with a named volume', () => {
    const { postgres, server } = compose.services
    expect(postgres?.image).toMatch(/^postgres:\d+/)
    expect(postgres?.healthcheck?.test.join(' ')).toContain('pg_isready')
    const volume = postgres?.volumes?.[0]?.split(':')[0]
    expect(volume && volume in compose.volumes).toBe(true)
    expect(server?.build).toBe('.')
    expect(server?.depends_on?.postgres?.condition).toBe('service_healthy')
  })

  it('gives the server every variable of .env; it overrides only where the database and port are', () => {
    const dotenv = Object.fromEntries(Object.keys(configSchema.shape).map((name) => [name, `operator-${name}`]))
    const env = containerEnv('server', { ...dotenv, POSTGRES_PASSWORD: 'secret' })
    const overridden = Object.keys(dotenv).filter((name) => env[name] !== dotenv[name])
    expect(overridden.sort()).toEqual(['DATABASE_PASSWORD', 'DATABASE_URL', 'HOST', 'PORT'])
    for (const name of Object.keys(env)) expect(Object.keys({ ...dotenv, POSTGRES_PASSWORD: '' })).toContain(name)
  })

  /** .env as an operator makes it: a copy of .env.example with the two required values set. */
  const operatorEnv = (password: string) => ({
    ...envExample,
    SERVICE_DID: 'did:web:mls.example.com',
    POSTGRES_PASSWORD: password,
  })

  it('builds a working configuration from .env.example and the required values, the password outside the URL whatever its characters', () => {
    const password = 'p@ss/w#rd%:?&= x'
    const config = loadConfig(containerEnv('server', operatorEnv(password)))
    expect(config.SERVICE_DID).toBe('did:web:mls.example.com')
    expect(containerEnv('postgres', operatorEnv(password)).POSTGRES_PASSWORD).toBe(password)
    const url = new URL(databaseUrl(config) ?? '')
    expect([url.hostname, url.port, url.username, url.pathname]).toEqual(['postgres', '5432', 'catbird', '/catbird'])
    // As the driver reads it.
    expect(decodeURIComponent(url.password)).toBe(password)
  })

  it('refuses to run on an unedited copy of .env.example, or without SERVICE_DID or POSTGRES_PASSWORD, instead of guessing them', () => {
    expect(() => containerEnv('server', envExample)).toThrow(/^POSTGRES_PASSWORD: set POSTGRES_PASSWORD in \.env/)
    expect(() => containerEnv('postgres', envExample)).toThrow(/^POSTGRES_PASSWORD: set POSTGRES_PASSWORD in \.env/)
    const { SERVICE_DID: _did, ...noDid } = operatorEnv('secret')
    const { POSTGRES_PASSWORD: _password, ...noPassword } = operatorEnv('secret')
    expect(() => containerEnv('server', noDid)).toThrow(/^SERVICE_DID: set SERVICE_DID in \.env/)
    expect(() => containerEnv('server', { ...noDid, SERVICE_DID: '' })).toThrow(
      /^SERVICE_DID: set SERVICE_DID in \.env/,
    )
    expect(() => containerEnv('server', noPassword)).toThrow(/^POSTGRES_PASSWORD: set POSTGRES_PASSWORD/)
    expect(() => containerEnv('postgres', noPassword)).toThrow(/^POSTGRES_PASSWORD: set POSTGRES_PASSWORD/)
  })
})

describe('DATABASE_PASSWORD', () => {
  it('reaches PostgreSQL intact with @ / # % and spaces in it', async () => {
    const admin = new pg.Client(inject('pgAdminUrl'))
    await admin.connect()
    const role = `pw_${Date.now()}`
    const password = 'p@ss/w#rd% :?&=ü'
    try {
      await admin.query(`CREATE ROLE ${role} LOGIN PASSWORD ${admin.escapeLiteral(password)}`)
      const url = new URL(inject('pgAdminUrl'))
      url.username = role
      url.password = ''
      const config = loadConfig({ DATABASE_URL: url.href, DATABASE_PASSWORD: password })
      const database = createDatabase({ url: databaseUrl(config) ?? '', poolSize: 1 })
      try {
        const { rows } = await sql<{ user: string }>`SELECT current_user AS user`.execute(database.db)
        expect(rows).toEqual([{ user: role }])
      } finally {
        await database.close()
      }
    } finally {
      await admin.query(`DROP ROLE IF EXISTS ${role}`)
      await admin.end()
    }
  })

  it('is refused beside a password in DATABASE_URL, or without DATABASE_URL', () => {
    expect(() => loadConfig({ DATABASE_URL: 'postgres://a:b@h/db', DATABASE_PASSWORD: 'c' })).toThrow(
      /DATABASE_PASSWORD: .*keep one/,
    )
    expect(() => loadConfig({ DATABASE_PASSWORD: 'c' })).toThrow(/DATABASE_PASSWORD: .*DATABASE_URL/)
  })
})

describe('DATABASE_LISTEN_URL', () => {
  it('takes DATABASE_PASSWORD unless it has a password of its own, and needs DATABASE_URL', () => {
    const base = { DATABASE_URL: 'postgres://a@pooler:6432/db', DATABASE_PASSWORD: 'p@ss' }
    expect(
      new URL(listenUrl(loadConfig({ ...base, DATABASE_LISTEN_URL: 'postgres://a@db:5432/db' })) ?? '').password,
    ).toBe('p%40ss')
    expect(listenUrl(loadConfig({ ...base, DATABASE_LISTEN_URL: 'postgres://b:own@db:5432/db' }))).toBe(
      'postgres://b:own@db:5432/db',
    )
    expect(listenUrl(loadConfig(base))).toBeUndefined()
    expect(() => loadConfig({ DATABASE_LISTEN_URL: 'postgres://a@db/db' })).toThrow(
      /DATABASE_LISTEN_URL: .*DATABASE_URL/,
    )
  })
})

describe('Dockerfile', () => {
  const instructions = DockerfileParser.parse(
    readFileSync(path.join(projectRoot, 'Dockerfile'), 'utf8'),
  ).getInstructions()
  const stages = instructions.filter((i) => i.getKeyword() === 'FROM').length
  // The image is what the last stage leaves: its instructions are the runtime's.
  const lastFrom = instructions.map((i) => i.getKeyword()).lastIndexOf('FROM')
  const runtime = instructions.slice(lastFrom)
  const one = (keyword: string) => {
    const found = runtime.filter((i) => i.getKeyword() === keyword)
    expect(found, keyword).toHaveLength(1)
    return found[0]!
  }
  /** An exec-form command (a JSON array, as Docker reads it), after `skip` leading words. */
  const execForm = (instruction: Instruction, skip = 0) =>
    JSON.parse(instruction.getArgumentsContent()!.split(/\s+/).slice(skip).join(' ')) as string[]

  it('builds in stages and runs, as a non-root user, the compiled src/main.ts (and npm run migrate and admin)', () => {
    expect(stages).toBeGreaterThanOrEqual(2)
    expect(one('USER').getArgumentsContent()).not.toMatch(/^(root|0)(:|$)/)
    const [program, entry] = execForm(one('CMD'))
    expect(program).toBe('node')
    // Where the build (tsconfig.build.json over tsconfig.json: outDir, rootDir) puts src/main.ts.
    const options = (file: string) =>
      (
        JSON.parse(readFileSync(path.join(projectRoot, file), 'utf8')) as {
          compilerOptions: { outDir?: string; rootDir?: string }
        }
      ).compilerOptions
    const { outDir, rootDir } = { ...options('tsconfig.json'), ...options('tsconfig.build.json') } as {
      outDir: string
      rootDir: string
    }
    expect(entry).toBe(path.join(outDir, path.relative(rootDir, 'src/main.ts')).replace(/\.ts$/, '.js'))
    // The operators' commands run compiled from there too, with package.json's scripts (copied below).
    const { scripts } = JSON.parse(readFileSync(path.join(projectRoot, 'package.json'), 'utf8')) as {
      scripts: Record<string, string>
    }
    for (const [script, source] of [
      ['migrate', 'src/db/migrate-cli.ts'],
      ['admin', 'src/admin-cli.ts'],
    ] as const) {
      expect(scripts[script]).toBe(`node ${path.join(outDir, path.relative(rootDir, source)).replace(/\.ts$/, '.js')}`)
    }
    // What the server reads at run time from its root.
    const copied = runtime.filter((i) => i.getKeyword() === 'COPY').map((i) => i.getArguments().at(-1)?.getValue())
    expect(copied.map((dest) => path.normalize(dest ?? ''))).toEqual(
      expect.arrayContaining(['node_modules', 'dist', path.normalize('./'), 'lexicons']),
    )
  })

  it('has a health check that passes on a healthy server and fails when none answers', async () => {
    const [program, ...args] = execForm(one('HEALTHCHECK'), 1)
    expect(program).toBe('node')
    const probe = (port: number) =>
      run(process.execPath, args, { env: { ...process.env, PORT: String(port) }, timeout: 10_000 }).then(
        () => 'healthy',
        () => 'unhealthy',
      )
    const t = await startTestApp()
    try {
      expect(await probe(Number(new URL(t.url).port))).toBe('healthy')
    } finally {
      await t.close()
    }
    expect(await probe(await freePort())).toBe('unhealthy')
  })
})
