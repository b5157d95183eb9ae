/**
 * `npm run token` and `npm run mls`: runs the command from its JavaScript,
 * compiled into dist/dev/ by tsconfig.dev.json, compiling it first when the
 * build is not current. Plain node starts the command several times faster
 * than tsx (a loader thread and, with its CLI, a second process), and the
 * README quickstart calls these commands about ten times.
 *
 * JavaScript, not TypeScript: it runs before anything is compiled.
 */
import { execFileSync } from 'node:child_process'
import { utimesSync } from 'node:fs'
import { createRequire } from 'node:module'
import path from 'node:path'
import process from 'node:process'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { buildIsCurrent } from './build-freshness.mjs'

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)))
const project = path.join(root, 'tsconfig.dev.json')
const outDir = path.join(root, 'dist', 'dev')

const [command, ...args] = process.argv.slice(2)
const script = path.join(outDir, 'scripts', `${command}.js`)
const buildInfo = path.join(outDir, 'tsconfig.dev.tsbuildinfo')
if (!buildIsCurrent(buildInfo, [project, path.join(root, 'tsconfig.json')])) {
  process.stderr.write(
    'compiling the development commands into dist/dev/ (on first use, and when their sources change)\n',
  )
  const started = new Date()
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc')
  try {
    // Not tsc -b, which looks only at the files tsconfig.dev.json names for
    // changes, not at the files they import. Incremental: it emits only what
    // changed; errors go to the terminal.
    execFileSync(process.execPath, [tsc, '-p', project], { stdio: ['ignore', 'inherit', 'inherit'] })
  } catch {
    process.stderr.write('the development commands did not compile (errors above)\n')
    process.exit(1)
  }
  // tsc leaves the build info as it was when nothing changed (a source only
  // touched); dated from the start, a source saved during the build is newer.
  utimesSync(buildInfo, started, started)
}
// As if node had been started with the command itself.
process.argv.splice(1, process.argv.length - 1, script, ...args)
await import(pathToFileURL(script).href)
