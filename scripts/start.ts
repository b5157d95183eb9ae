/**
 * `npm start`: settings from `.env`, the port checked first, TypeScript
 * compiled only when dist/ is older than the sources, then the compiled
 * server (dist/main.js) run in this same process. The npm script `exec`s
 * node, so the SIGINT/SIGTERM npm forwards reach the server itself.
 * Supervisors (systemd, Docker) run `node dist/main.js` directly.
 */
import path from 'node:path'
import { pathToFileURL } from 'node:url'
import ts from 'typescript'
import { loadConfig } from '../src/config.js'
import { projectRoot } from '../src/paths.js'
import { assertPortFree } from '../src/port.js'
import { exitOnStartupFailure, StartupError } from '../src/startup-error.js'
import { loadProjectEnv } from './project-env.js'

const say = (msg: string) => process.stderr.write(`npm start: ${msg}\n`)

/** Compiles with `tsc -b` semantics: nothing to do when dist/ is current. */
function buildIfStale(): void {
  // The default host reports compiler errors on the console.
  const host = ts.createSolutionBuilderHost(ts.sys)
  const builder = ts.createSolutionBuilder(host, [path.join(projectRoot, 'tsconfig.build.json')], {})
  const project = builder.getNextInvalidatedProject()
  if (!project) return
  say('compiling TypeScript into dist/ (the sources changed since the last build)')
  if (project.done() !== ts.ExitStatus.Success) {
    throw new StartupError('TypeScript did not compile (errors above); fix them and run npm start again.')
  }
}

async function start(): Promise<void> {
  const envFile = loadProjectEnv()
  if (envFile) say(`settings from ${path.relative(process.cwd(), envFile) || envFile} (the environment overrides them)`)
  const config = loadConfig()
  await assertPortFree(config.HOST, config.PORT)
  buildIfStale()
  await import(pathToFileURL(path.join(projectRoot, 'dist', 'main.js')).href)
}

start().catch(exitOnStartupFailure)
