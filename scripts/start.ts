/**
 * `npm start`: settings from `.env`, the port checked first, TypeScript
 * compiled only when dist/ is older than the sources (told from file times
 * first, without loading the compiler), then the compiled
 * server (dist/main.js) run in this same process. The npm script `exec`s
 * node, so the SIGINT/SIGTERM npm forwards reach the server itself.
 * Supervisors (systemd, Docker) run `node dist/main.js` directly.
 */
import { utimesSync } from 'node:fs'
import path from 'node:path'
import { pathToFileURL } from 'node:url'
import { loadConfig } from '../src/config.js'
import { projectRoot } from '../src/paths.js'
import { assertPortFree } from '../src/port.js'
import { exitOnStartupFailure, StartupError } from '../src/startup-error.js'
import { buildIsCurrent } from './build-freshness.mjs'
import { loadProjectEnv } from './project-env.js'

const say = (msg: string) => process.stderr.write(`npm start: ${msg}\n`)

/** Compiles with `tsc -b` semantics: nothing to do when dist/ is current. */
async function buildIfStale(): Promise<void> {
  const tsconfig = path.join(projectRoot, 'tsconfig.build.json')
  const buildInfo = path.join(projectRoot, 'dist', 'tsconfig.build.tsbuildinfo')
  if (buildIsCurrent(buildInfo, [tsconfig, path.join(projectRoot, 'tsconfig.json')])) return
  say('checking which sources changed since the last build of dist/')
  const started = new Date()
  const { default: ts } = await import('typescript')
  // The default host reports compiler errors on the console.
  const host = ts.createSolutionBuilderHost(ts.sys)
  const builder = ts.createSolutionBuilder(host, [tsconfig], {})
  const project = builder.getNextInvalidatedProject()
  if (!project) {
    // Current after all (a folder's time had changed): the next start need not ask again.
    utimesSync(buildInfo, started, started)
    return
  }
  // Otherwise the sources were touched but not changed: only the build's file times are updated.
  if (project.kind === ts.InvalidatedProjectKind.Build) {
    say('compiling TypeScript into dist/ (the sources changed since the last build)')
  }
  if (project.done() !== ts.ExitStatus.Success) {
    throw new StartupError('TypeScript did not compile (errors above); fix them and run npm start again.')
  }
}

async function start(): Promise<void> {
  loadProjectEnv('npm start')
  const config = loadConfig()
  await assertPortFree(config.HOST, config.PORT)
  await buildIfStale()
  say('loading the server (dist/main.js)')
  await import(pathToFileURL(path.join(projectRoot, 'dist', 'main.js')).href)
}

start().catch(exitOnStartupFailure)
