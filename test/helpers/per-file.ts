/**
 * For test files only: it registers vitest hooks, and benchmarks, which
 * import the kit from index.ts, cannot load vitest.
 */
import { afterAll, beforeAll } from 'vitest'
import { startTestApp, type TestApp, type TestAppOptions } from './app.js'

/** The file's server: started before its tests and closed after them, there from the first test on. */
export function testAppForFile(opts?: TestAppOptions): TestApp {
  const t = {} as TestApp
  let started: TestApp | undefined
  beforeAll(async () => {
    started = await startTestApp(opts)
    Object.assign(t, started)
  })
  afterAll(async () => {
    await started?.close()
  })
  return t
}
