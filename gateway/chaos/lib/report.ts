/** What every chaos phase reports, and the thresholds it passes or fails on. */
import type { Proc } from './procs.ts'

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
  fdsBefore: number
  fdsAfter: number
  /** Threshold on RSS growth (fraction); null when the phase does not judge memory. */
  rssLimit: number | null
  /** Phase-specific figures (statuses seen, failovers, drain outcome...). */
  figures: Record<string, number | string>
  /** Phase-specific failures beyond the four counters (each a sentence). */
  violations: string[]
  /** A few examples of what went wrong, for the log. */
  examples: string[]
  ms: number
}

export function newReport(name: string): PhaseReport {
  return { name, requests: 0, crashes: 0, gateway5xx: 0, hangs: 0, nonShaped: 0, rssBefore: 0, rssAfter: 0, fdsBefore: 0, fdsAfter: 0, rssLimit: null, figures: {}, violations: [], examples: [], ms: 0 }
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

export function rssGrowth(r: PhaseReport): number {
  return r.rssBefore === 0 || r.rssAfter === 0 ? 0 : r.rssAfter / r.rssBefore - 1
}

export function passed(r: PhaseReport): boolean {
  return r.crashes === 0 && r.gateway5xx === 0 && r.hangs === 0 && r.nonShaped === 0 && r.violations.length === 0 && (r.rssLimit === null || rssGrowth(r) < r.rssLimit)
}

const mb = (b: number): string => (b / 1024 / 1024).toFixed(1)

export function formatTable(reports: readonly PhaseReport[]): string {
  const rows = [
    '| phase | requests | crashes | gateway 5xx | hangs | non-OpenAI | RSS MB before -> after | fds before -> after | result |',
    '|---|---|---|---|---|---|---|---|---|',
  ]
  for (const r of reports) {
    const rss = r.rssBefore === 0 ? 'n/a' : `${mb(r.rssBefore)} -> ${mb(r.rssAfter)} (${(rssGrowth(r) * 100).toFixed(1)}%${r.rssLimit === null ? '' : ` < ${r.rssLimit * 100}%`})`
    const fds = r.fdsBefore === 0 ? 'n/a' : `${r.fdsBefore} -> ${r.fdsAfter}`
    rows.push(`| ${r.name} | ${r.requests} | ${r.crashes} | ${r.gateway5xx} | ${r.hangs} | ${r.nonShaped} | ${rss} | ${fds} | ${passed(r) ? 'pass' : 'FAIL'} |`)
  }
  return rows.join('\n')
}
