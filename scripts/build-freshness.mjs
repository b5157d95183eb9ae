/**
 * Whether a `tsc -b` build is current, told from file times alone: loading
 * the TypeScript compiler to ask it takes a second or more, which
 * `npm start` and each development command would pay on every run.
 *
 * Current when the build info, and every source of the last build it lists,
 * with the folders holding them (a file added or removed changes its
 * folder's time), and the given tsconfig files are no newer than it. Anything
 * else, a build info this cannot read included, counts as not current: the
 * compiler then decides (and the build info's time must be brought forward
 * when it finds nothing to compile: `tsc -b` does so itself).
 *
 * JavaScript, not TypeScript: `npm run token` and `npm run mls` use it before
 * anything is compiled.
 */
import { readFileSync, statSync } from 'node:fs'
import path from 'node:path'

const modified = (file) => statSync(file, { throwIfNoEntry: false })?.mtimeMs ?? Infinity

export function buildIsCurrent(buildInfoFile, configFiles) {
  const built = modified(buildInfoFile)
  if (built === Infinity) return false
  let sources
  try {
    const { fileNames } = JSON.parse(readFileSync(buildInfoFile, 'utf8'))
    sources = fileNames
      .filter((name) => !name.split('/').includes('node_modules'))
      .map((name) => path.resolve(path.dirname(buildInfoFile), name))
  } catch {
    return false
  }
  const folders = new Set(sources.map((file) => path.dirname(file)))
  return [...configFiles, ...sources, ...folders].every((file) => modified(file) <= built)
}
