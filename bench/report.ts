import { readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { projectRoot } from '../src/paths.js'
import type { Run } from './load.js'
import { median, medianOf } from './rounds.js'

export interface Environment {
  date: string
  command: string
  nproc: number
  cpuModel: string
  memoryGiB: number
  node: string
  postgres: string
  postgresSettings: Record<string, string>
  database: string
  logLevel: string
  poolSize: number
  users: number
  convos: number
  connections: number
  rounds: number
  seconds: number
  minutes: number
}

/** A row of the targets table. */
export interface Target {
  /** Begins with the number of the measure it belongs to: the table is in that order. */
  measure: string
  figure: number
  digits?: number
  /** Absent for figures shown for comparison only. */
  target?: string
  met?: boolean
}

/** What one question of the bench answers: its rows of the targets table, and its own part of the results. */
export interface Section {
  targets: Target[]
  /** Lines of Markdown, from its heading on. */
  markdown: string[]
}

export const atLeast = (measure: string, figure: number, min: number): Target => ({
  measure,
  figure,
  target: `≥ ${min}`,
  met: figure >= min,
})

export const atMost = (measure: string, figure: number, max: number, digits = 2): Target => ({
  measure,
  figure,
  digits,
  target: `≤ ${max}`,
  met: figure <= max,
})

export const fixed = (n: number, digits = 2) => (Number.isFinite(n) ? n.toFixed(digits) : 'n/a')
export const formatCount = (n: number) => fixed(n, Number.isInteger(n) ? 0 : 1)
export const millions = (n: number) => `${fixed(n / 1e6, 1)} M`

export const table = (head: string[], rows: Array<Array<string | number>>) =>
  [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join(
    '\n',
  )

const cpuCell = (runs: Run[], process: keyof Run['cpu']) => {
  const value = median(runs.map((r) => r.cpu[process]))
  return Number.isNaN(value) ? '–' : fixed(value, 0)
}

/** Medians over the runs of each variant. */
export function runsTable(entries: Array<[string, Run[]]>): string {
  return table(
    ['variant', 'req/s', 'p50 ms', 'p99 ms', 'machine CPU busy', 'CPU µs/req: app', 'PostgreSQL', 'load generator'],
    entries.map(([name, runs]) => [
      name,
      fixed(medianOf(runs, 'rps'), 0),
      fixed(medianOf(runs, 'p50')),
      fixed(medianOf(runs, 'p99')),
      `${fixed(medianOf(runs, 'machineBusy') * 100, 0)}%`,
      cpuCell(runs, 'app'),
      cpuCell(runs, 'postgres'),
      cpuCell(runs, 'loadGenerator'),
    ]),
  )
}

/** Lines folded away under `summary` (GitHub renders Markdown inside once a blank line follows the summary). */
export const details = (summary: string, lines: string[]) => [
  `<details><summary>${summary}</summary>`,
  '',
  ...lines,
  '',
  '</details>',
  '',
]

const measureNumber = (t: Target) => Number.parseInt(t.measure, 10)

/** The figures as Markdown: printed to the terminal and written into BENCHMARKS.md. */
export function renderResults(e: Environment, sections: Section[]): string {
  return [
    `Measured ${e.date} with \`${e.command}\` (${fixed(e.minutes, 1)} minutes).`,
    '',
    table(
      ['', ''],
      [
        ['machine', `${e.nproc} cores (\`nproc\`), ${e.cpuModel}, ${fixed(e.memoryGiB, 1)} GiB memory`],
        ['Node', e.node],
        [
          'PostgreSQL',
          `${e.postgres}, ${e.database}; ${Object.entries(e.postgresSettings)
            .map(([n, v]) => `${n}=${v}`)
            .join(', ')}`,
        ],
        ['server', `production build (dist/) in its own process; LOG_LEVEL=${e.logLevel}, pool of ${e.poolSize}`],
        [
          'load',
          `autocannon 9 in the bench process, ${e.connections} connections; ${e.users} users in ${e.convos} conversations, a random member of a random conversation per request`,
        ],
        [
          'method',
          `variants interleaved A, B, A, B: a warm-up pass, then ${e.rounds} rounds of ${e.seconds} s each; figures are medians over rounds, ratios the median of the per-round ratios`,
        ],
      ],
    ),
    '',
    '### Targets',
    '',
    table(
      ['measure', 'figure', 'target', 'met'],
      sections
        .flatMap((s) => s.targets)
        .sort((a, b) => measureNumber(a) - measureNumber(b))
        .map((t) => [
          t.measure,
          fixed(t.figure, t.digits ?? 2),
          t.target ?? '',
          t.met === undefined ? '' : t.met ? 'yes' : '**no**',
        ]),
    ),
    '',
    ...sections.flatMap((s) => s.markdown),
  ].join('\n')
}

const START = '<!-- bench:results:start -->'
const END = '<!-- bench:results:end -->'

/** Replaces the generated part of BENCHMARKS.md, keeping the written parts around it. */
export function writeBenchmarksFile(results: string): string {
  const file = path.join(projectRoot, 'BENCHMARKS.md')
  const block = `${START}\n${results}\n${END}`
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch {
    text = `# Benchmarks\n\n${START}\n${END}\n`
  }
  const start = text.indexOf(START)
  const end = text.indexOf(END)
  text =
    start >= 0 && end > start
      ? text.slice(0, start) + block + text.slice(end + END.length)
      : `${text.trimEnd()}\n\n${block}\n`
  writeFileSync(file, text)
  return file
}
