/** Plain-text tables for the terminal; the JSON file carries the same numbers unrounded. */
import { NOISY_MACHINE_CORES, type Check, type PendingScenario, type ScenarioResult } from './scenario.ts'


const ms = (v: number | undefined): string => (v === undefined || !Number.isFinite(v) ? '-' : v.toFixed(3))
const signed = (v: number | undefined): string => (v === undefined || !Number.isFinite(v) ? '-' : `${v >= 0 ? '+' : ''}${v.toFixed(3)}`)
const num = (v: number | null | undefined, digits = 0): string => (v === null || v === undefined || !Number.isFinite(v) ? '-' : v.toFixed(digits))

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)))
  const line = (cells: string[]): string => cells.map((c, i) => (i < 2 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ').trimEnd()
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n')
}

export function formatScenario(result: ScenarioResult): string {
  const { otherCores, stealCores } = result.interference
  const out = [`\n## ${result.title} [${result.name}]  (${(result.durationMs / 1000).toFixed(1)} s; other processes ${otherCores.toFixed(2)} cores, steal ${stealCores.toFixed(2)})`]
  if (result.rows.length > 0) {
    const header = ['target', 'metric', 'n', 'p50', 'p90', 'p99', 'p99.9', 'max', 'req/s', 'err', 'added p50', 'p90', 'p99', 'p99.9', 'over', 'cpu us/req', 'rss MiB', 'gc ms/1k']
    const rows = result.rows.map((r) => [
      r.target,
      r.metric,
      String(r.latency.count),
      ms(r.latency.p50),
      ms(r.latency.p90),
      ms(r.latency.p99),
      ms(r.latency.p999),
      ms(r.latency.max),
      num(r.requestsPerSecond),
      String(r.errors),
      signed(r.added?.p50),
      signed(r.added?.p90),
      signed(r.added?.p99),
      signed(r.added?.p999),
      r.addedOver ?? '',
      num(r.cost?.cpuUsPerRequest, 1),
      num(r.cost?.rssMiB),
      num(r.cost?.gcMsPer1kRequests, 2),
    ])
    out.push('latencies in ms', table(header, rows))
    const extras = result.rows.filter((r) => Object.keys(r.extra).length > 0)
    for (const r of extras) out.push(`  ${r.target} ${r.metric}: ${Object.entries(r.extra).map(([k, v]) => `${k}=${typeof v === 'number' ? num(v, 2) : v}`).join(', ')}`)
  }
  for (const note of result.notes) out.push(`  note: ${note}`)
  if (otherCores + stealCores >= NOISY_MACHINE_CORES) {
    out.push(`  warning: other processes used ${otherCores.toFixed(2)} cores (hypervisor steal ${stealCores.toFixed(2)}) during this scenario; verdicts marked (noisy) may not hold on an idle machine`)
  }
  for (const c of result.checks) out.push(`  ${formatCheck(c)}`)
  if (result.error) out.push(`  ERROR: ${result.error}`)
  if (result.skipped) out.push(`  skipped: ${result.skipped}`)
  return out.join('\n')
}

export function formatCheck(c: Check): string {
  const digits = c.unit === 'ms' ? 3 : c.unit === 'ratio' ? 2 : 0
  return `${c.pass ? 'PASS' : 'FAIL'}${c.noisy ? ' (noisy)' : ''}  ${c.label}: ${c.value.toFixed(digits)} ${c.unit} (target ${c.comparison} ${Number(c.limit.toFixed(digits))} ${c.unit})`
}

export function formatSummary(results: ScenarioResult[], pending: readonly PendingScenario[]): string {
  const out = ['\n## Summary']
  for (const result of results) {
    if (result.error) out.push(`ERROR ${result.name}: ${result.error.split('\n')[0]}`)
    for (const c of result.checks) out.push(`${formatCheck(c)}  [${result.name}]`)
  }
  for (const result of results) if (result.skipped) out.push(`skipped ${result.name}: ${result.skipped}`)
  for (const p of pending) out.push(`pending ${p.name}: ${p.title} (waiting for ${p.waitingFor})`)
  return out.join('\n')
}
