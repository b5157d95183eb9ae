import type { Reporter, TestModule } from 'vitest/node'

/**
 * Ends the run with a plain "N passed, N failed" line, the closing line CI
 * reads whatever the test runner.
 */
export default class SummaryReporter implements Reporter {
  onTestRunEnd(testModules: ReadonlyArray<TestModule>): void {
    let passed = 0
    let failed = 0
    let skipped = 0
    for (const mod of testModules) {
      for (const test of mod.children.allTests()) {
        const state = test.result().state
        if (state === 'passed') passed++
        else if (state === 'failed') failed++
        else skipped++
      }
    }
    const errors = testModules.filter((m) => m.state() === 'failed' && [...m.children.allTests()].length === 0).length
    const line = `${passed} passed, ${failed + errors} failed${skipped ? `, ${skipped} skipped` : ''}`
    // After the default reporter's summary, which it prints once this hook returns.
    process.once('beforeExit', () => process.stdout.write(`\n${line}\n`))
  }
}
