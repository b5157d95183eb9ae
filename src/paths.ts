import { existsSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

/** The project root (holding package.json), from sources or from the compiled build. */
function findProjectRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url))
  while (!existsSync(path.join(dir, 'package.json'))) {
    const parent = path.dirname(dir)
    if (parent === dir) throw new Error('cannot locate the project root')
    dir = parent
  }
  return dir
}

export const projectRoot = findProjectRoot()
export const lexiconsDir = path.join(projectRoot, 'lexicons')
