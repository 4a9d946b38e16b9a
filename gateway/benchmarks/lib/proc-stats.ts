/**
 * What a measured process costs: CPU time and memory from /proc (summed over its children, so a
 * multi-worker gateway counts whole), and GC time from its /metrics when it exposes prom-client's
 * `nodejs_gc_duration_seconds`, or from `--trace-gc` output when that flag is passed.
 */
import { readFileSync, readdirSync } from 'node:fs'

/** Clock ticks per second for /proc/<pid>/stat times; 100 on every Linux this runs on. */
const CLOCK_TICKS = 100

export interface ProcSnapshot {
  /** user + system CPU time of the process tree, in ms. */
  cpuMs: number
  /** Resident set size of the process tree, in MiB. */
  rssMiB: number
  /** Peak resident set size (VmHWM) of the process tree, in MiB. */
  peakRssMiB: number
}

export function snapshotProcessTree(rootPid: number): ProcSnapshot {
  const total: ProcSnapshot = { cpuMs: 0, rssMiB: 0, peakRssMiB: 0 }
  for (const pid of processTree(rootPid)) {
    try {
      // The command name (field 2) may hold spaces; the fields after its closing ")" are fixed.
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      total.cpuMs += ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS
      const status = readFileSync(`/proc/${pid}/status`, 'utf8')
      total.rssMiB += statusKiB(status, 'VmRSS') / 1024
      total.peakRssMiB += statusKiB(status, 'VmHWM') / 1024
    } catch {
      // The process exited between listing and reading: it no longer costs anything.
    }
  }
  return total
}

function statusKiB(status: string, key: string): number {
  const match = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)
  return match ? Number(match[1]) : 0
}

/** The PID and every descendant PID of `rootPid` (e.g. a gateway primary and its workers). */
export function processTree(rootPid: number): number[] {
  const pids = [rootPid]
  for (let i = 0; i < pids.length; i++) {
    const pid = pids[i]!
    let tasks: string[]
    try {
      tasks = readdirSync(`/proc/${pid}/task`)
    } catch {
      continue
    }
    for (const tid of tasks) {
      try {
        for (const child of readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').split(' ')) {
          if (child.trim()) pids.push(Number(child))
        }
      } catch {
        // Thread gone.
      }
    }
  }
  return pids
}

export interface GcTotals {
  /** Total GC pause time, ms. */
  pauseMs: number
  /** Number of collections. */
  count: number
  /** Of them, full mark-compacts (`kind="major"`). */
  majorCount: number
}

/**
 * Reads prom-client's default GC histogram from a /metrics endpoint; null when the endpoint or the
 * metric is absent (the harness then reports GC only if `--trace-gc` was passed).
 */
export async function scrapeGc(metricsUrl: string): Promise<GcTotals | null> {
  let text: string
  try {
    const response = await fetch(metricsUrl, { signal: AbortSignal.timeout(2_000) })
    if (!response.ok) return null
    text = await response.text()
  } catch {
    return null
  }
  let seconds = 0
  let count = 0
  let majorCount = 0
  let found = false
  for (const line of text.split('\n')) {
    if (line.startsWith('nodejs_gc_duration_seconds_sum')) {
      seconds += Number(line.slice(line.lastIndexOf(' ') + 1))
      found = true
    } else if (line.startsWith('nodejs_gc_duration_seconds_count')) {
      const n = Number(line.slice(line.lastIndexOf(' ') + 1))
      count += n
      if (line.includes('kind="major"')) majorCount += n
    }
  }
  return found ? { pauseMs: seconds * 1000, count, majorCount } : null
}

/**
 * Sums pauses from V8's `--trace-gc` lines, e.g.
 * `[1234:0x5e3c000]  812 ms: Scavenge 5.1 (6.0) -> 4.2 (7.0) MB, pooled: 0 MB, 0.52 / 0.00 ms  (average mu = ...`
 */
export class GcTraceCounter {
  pauseMs = 0
  count = 0
  majorCount = 0
  /** The collection's kind (a full one starts with `Mark-`), and its pause. */
  static readonly LINE = /: (Scavenge|Mark-Compact|Mark-sweep|Minor Mark-Sweep|Minor Mark-Compact)\b.*?, ([\d.]+) \/ [\d.]+ ms/

  onLine = (line: string): void => {
    const match = GcTraceCounter.LINE.exec(line)
    if (!match) return
    this.pauseMs += Number(match[2])
    this.count++
    if (match[1]!.startsWith('Mark-')) this.majorCount++
  }

  totals(): GcTotals {
    return { pauseMs: this.pauseMs, count: this.count, majorCount: this.majorCount }
  }
}
