import { existsSync } from 'node:fs'
import path from 'node:path'
import { projectRoot } from '../src/paths.js'

/**
 * Reads the project's `.env` into process.env, as `npm start` and `npm run
 * token` do; variables already set in the environment win. Returns the file
 * read, if there was one. (Node's --env-file would fail without the file.)
 */
export function loadProjectEnv(): string | undefined {
  const file = path.join(projectRoot, '.env')
  if (!existsSync(file)) return undefined
  process.loadEnvFile(file)
  return file
}
