/**
 * How much of the machine something other than the benchmark used while a scenario ran: total
 * busy CPU from /proc/stat minus our own: this process, its reaped children (every process the
 * harness started and stopped) and the ones still running (shared stacks). On a shared machine this says how far to
 * trust a run; steal is time the hypervisor gave our virtual CPUs to someone else.
 */
import { readFileSync } from 'node:fs'
import { snapshotProcessTree } from './proc-stats.ts'

const TICK_MS = 10

export interface CpuSample {
  wallMs: number
  busyMs: number
  stealMs: number
  oursMs: number
}

export interface Interference {
  /** Average number of cores kept busy by processes the harness did not start. */
  otherCores: number
  /** Average number of cores' worth of time stolen by the hypervisor. */
  stealCores: number
}

export function sampleCpu(livePids: readonly number[]): CpuSample {
  const cpu = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number)
  const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = cpu
  const self = readFileSync('/proc/self/stat', 'utf8')
  const fields = self.slice(self.lastIndexOf(')') + 2).split(' ').map(Number)
  // utime, stime, cutime, cstime are fields 14-17 of the full line, 11-14 after the command name.
  const ours = (fields[11] ?? 0) + (fields[12] ?? 0) + (fields[13] ?? 0) + (fields[14] ?? 0)
  const live = livePids.reduce((sum, pid) => sum + snapshotProcessTree(pid).cpuMs, 0)
  return { wallMs: performance.now(), busyMs: (user + nice + system + irq + softirq) * TICK_MS, stealMs: steal * TICK_MS, oursMs: ours * TICK_MS + live }
}

export function interferenceBetween(before: CpuSample, after: CpuSample): Interference {
  const wall = after.wallMs - before.wallMs
  if (wall <= 0) return { otherCores: 0, stealCores: 0 }
  const other = after.busyMs - before.busyMs - (after.oursMs - before.oursMs)
  return { otherCores: Math.max(0, other) / wall, stealCores: (after.stealMs - before.stealMs) / wall }
}
