/** What every chaos phase reports, and the thresholds it passes or fails on. */
import { join } from 'node:path'
import type { GatewayProc, Proc } from './procs.ts'

export interface PhaseReport {
  name: string
  requests: number
  /** Gateway processes that exited when the suite did not stop them. */
  crashes: number
  /** 5xx answers the gateway made itself (GW_ERR_*) where the client input was the only fault. */
  gateway5xx: number
  /** Requests with no complete answer within their deadline. */
  hangs: number
  /** Answers not in the OpenAI shape: error bodies without `{"error":{...}}`, no answer at all, cut bodies, streams without an end. */
  nonShaped: number
  rssBefore: number
  rssAfter: number
  /**
   * Retained memory: V8 heap in use plus external memory (Buffers), both after a full collection
   * forced through the inspector; 0 when the phase does not measure it. Judged with `rssLimit`.
   */
  retainedBefore: number
  retainedAfter: number
  fdsBefore: number
  fdsAfter: number
  /**
   * Threshold on memory growth (fraction), applied to retained memory (post-GC heap + external) and
   * to RSS measured after that collection and a settle; null when the phase does not judge memory.
   */
  rssLimit: number | null
  /** False when something the suite did (heap snapshots) inflates RSS: only retained memory is judged. */
  rssJudged: boolean
  /** Phase-specific figures (statuses seen, failovers, drain outcome...). */
  figures: Record<string, number | string>
  /** Phase-specific failures beyond the four counters (each a sentence). */
  violations: string[]
  /** A few examples of what went wrong, for the log. */
  examples: string[]
  ms: number
}

export function newReport(name: string): PhaseReport {
  return { name, requests: 0, crashes: 0, gateway5xx: 0, hangs: 0, nonShaped: 0, rssBefore: 0, rssAfter: 0, retainedBefore: 0, retainedAfter: 0, fdsBefore: 0, fdsAfter: 0, rssLimit: null, rssJudged: true, figures: {}, violations: [], examples: [], ms: 0 }
}

export function example(report: PhaseReport, text: string): void {
  if (report.examples.length < 12) report.examples.push(text)
}

export function sampleBefore(report: PhaseReport, proc: Proc): void {
  report.rssBefore = proc.rss()
  report.fdsBefore = proc.fds()
}

export function sampleAfter(report: PhaseReport, proc: Proc): void {
  if (proc.exitStatus !== null) return
  report.rssAfter = proc.rss()
  report.fdsAfter = proc.fds()
}

/**
 * Memory a phase is judged on, measured the same way before and after: in-flight requests done,
 * a full collection through the inspector (repeated until the heap stops shrinking), then
 * `SETTLE_MS` for the allocator to hand freed pages back, then the figures. Raw RSS under load is
 * also recorded (`RSS MB under load`), for information: it includes V8's young generation grown
 * to its maximum and old-space pages kept for reuse, which a collection gives back.
 */
const SETTLE_MS = 1_000

async function measure(gw: GatewayProc): Promise<{ rss: number; retained: number; heapUsed: number; external: number }> {
  const inspector = gw.inspector
  if (inspector === null) throw new Error('memory is measured through the inspector: start the gateway with { inspect: true }')
  await inspector.collectAndMeasure()
  await new Promise((r) => setTimeout(r, SETTLE_MS))
  const f = await inspector.collectAndMeasure()
  return { rss: gw.proc.rss(), retained: f.heapUsed + f.external, heapUsed: f.heapUsed, external: f.external }
}

const mbFigure = (b: number): string => (b / 1024 / 1024).toFixed(1)

let snapshotDir: string | null = null
/** With `--heap-snapshots DIR`: a heap snapshot beside every before/after measure, for diagnosis. */
export function setSnapshotDir(dir: string | null): void {
  snapshotDir = dir
}

async function maybeSnapshot(report: PhaseReport, gw: GatewayProc, when: string): Promise<void> {
  if (snapshotDir === null || gw.inspector === null) return
  // Writing a snapshot costs the process native memory it keeps for a while: RSS is not judged then.
  report.rssJudged = false
  const path = join(snapshotDir, `${report.name.replace(/[^a-z0-9]+/gi, '-')}-${when}.heapsnapshot`)
  await gw.inspector.snapshot(path)
  report.figures[`heap snapshot ${when}`] = path
}

/** Before a phase's load: the memory and descriptor figures it is judged on (see `measure`). */
export async function measureBefore(report: PhaseReport, gw: GatewayProc): Promise<void> {
  const m = await measurePhase(report, gw, 'before')
  report.rssBefore = m.rss
  report.retainedBefore = m.retained
  report.fdsBefore = m.fds
}

/** After it, the same figures; nothing when the gateway is gone (a crash is reported as such). */
export async function measureAfter(report: PhaseReport, gw: GatewayProc): Promise<void> {
  if (gw.proc.exitStatus !== null) return
  const m = await measurePhase(report, gw, 'after')
  report.rssAfter = m.rss
  report.retainedAfter = m.retained
  report.fdsAfter = m.fds
}

async function measurePhase(report: PhaseReport, gw: GatewayProc, when: 'before' | 'after'): Promise<{ rss: number; retained: number; fds: number }> {
  report.figures[`RSS MB under load, ${when}`] = mbFigure(gw.proc.rss())
  const m = await measure(gw)
  const fds = gw.proc.fds()
  report.figures[`heap used MB after GC, ${when}`] = mbFigure(m.heapUsed)
  report.figures[`external MB after GC, ${when}`] = mbFigure(m.external)
  await maybeSnapshot(report, gw, when)
  return { rss: m.rss, retained: m.retained, fds }
}

export function rssGrowth(r: PhaseReport): number {
  return r.rssBefore === 0 || r.rssAfter === 0 ? 0 : r.rssAfter / r.rssBefore - 1
}

export function retainedGrowth(r: PhaseReport): number {
  return r.retainedBefore === 0 || r.retainedAfter === 0 ? 0 : r.retainedAfter / r.retainedBefore - 1
}

export function passed(r: PhaseReport): boolean {
  const memoryOk = r.rssLimit === null || ((!r.rssJudged || rssGrowth(r) < r.rssLimit) && retainedGrowth(r) < r.rssLimit)
  return r.crashes === 0 && r.gateway5xx === 0 && r.hangs === 0 && r.nonShaped === 0 && r.violations.length === 0 && memoryOk
}

const mb = (b: number): string => (b / 1024 / 1024).toFixed(1)

export function formatTable(reports: readonly PhaseReport[]): string {
  const rows = [
    '| phase | requests | crashes | gateway 5xx | hangs | non-OpenAI | RSS MB before -> after | retained MB before -> after | fds before -> after | result |',
    '|---|---|---|---|---|---|---|---|---|---|',
  ]
  for (const r of reports) {
    const rss = r.rssBefore === 0 ? 'n/a' : `${mb(r.rssBefore)} -> ${mb(r.rssAfter)} (${(rssGrowth(r) * 100).toFixed(1)}%${r.rssLimit === null ? '' : r.rssJudged ? ` < ${r.rssLimit * 100}%` : ', not judged: heap snapshots'})`
    const retained = r.retainedBefore === 0 ? 'n/a' : `${mb(r.retainedBefore)} -> ${mb(r.retainedAfter)} (${(retainedGrowth(r) * 100).toFixed(1)}%${r.rssLimit === null ? '' : ` < ${r.rssLimit * 100}%`})`
    const fds = r.fdsBefore === 0 ? 'n/a' : `${r.fdsBefore} -> ${r.fdsAfter}`
    rows.push(`| ${r.name} | ${r.requests} | ${r.crashes} | ${r.gateway5xx} | ${r.hangs} | ${r.nonShaped} | ${rss} | ${retained} | ${fds} | ${passed(r) ? 'pass' : 'FAIL'} |`)
  }
  return rows.join('\n')
}
