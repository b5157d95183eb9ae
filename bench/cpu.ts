import { readdirSync, readFileSync } from 'node:fs'
import type pg from 'pg'

/** A reading of CPU time used so far, in microseconds. */
export type CpuMeter = () => Promise<number>

/** /proc/<pid>/stat fields after the command name (field 3 onwards), or undefined once the process is gone. */
function procStat(pid: string): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  } catch {
    return undefined
  }
}

/** Our PID namespace may not be the server's (a container): check the name too. */
function isPostgres(pid: string): boolean {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'postgres'
  } catch {
    return false
  }
}

const TICK_MICROS = 10_000 // USER_HZ is 100 on Linux

/** Busy and total CPU time of all cores since boot, from /proc/stat. */
export function machineCpu(): { busy: number; total: number } {
  const fields = (readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '').split(/\s+/).slice(1).map(Number)
  const total = fields.reduce((sum, n) => sum + n, 0)
  const idle = (fields[3] ?? 0) + (fields[4] ?? 0) // idle and iowait
  return { busy: total - idle, total }
}

export const thisProcessCpu: CpuMeter = async () => {
  const usage = process.cpuUsage()
  return usage.user + usage.system
}

/**
 * CPU time of the PostgreSQL server behind `pool`, when it runs on this
 * machine: the postmaster (with its exited children, which it has reaped)
 * and its live children. Undefined when it runs elsewhere.
 */
export async function postgresCpu(pool: pg.Pool): Promise<CpuMeter | undefined> {
  const { rows } = await pool.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')
  const backend = String(rows[0]?.pid)
  // After the name come state and ppid; utime, stime, cutime and cstime are the 12th to 15th.
  const postmaster = procStat(backend)?.[1]
  if (!postmaster || !isPostgres(backend) || !isPostgres(postmaster)) return undefined
  return async () => {
    let ticks = 0
    for (const pid of readdirSync('/proc')) {
      if (!/^\d+$/.test(pid)) continue
      const fields = procStat(pid)
      if (!fields) continue
      if (pid === postmaster) {
        // utime, stime, and cutime, cstime of reaped children
        ticks += Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14])
      } else if (fields[1] === postmaster) {
        ticks += Number(fields[11]) + Number(fields[12])
      }
    }
    return ticks * TICK_MICROS
  }
}

/** This process's memory after a full collection (processes of the bench run with --expose-gc). */
export async function memoryAfterGc(): Promise<{ rss: number; heapUsed: number }> {
  const gc = (globalThis as { gc?: () => void }).gc
  gc?.()
  const { rss, heapUsed } = process.memoryUsage()
  return { rss, heapUsed }
}
