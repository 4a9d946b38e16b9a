/**
 * Medians across several `npm run bench` result files, as Markdown tables (what docs/benchmarks.md
 * quotes). One run on a shared machine can catch a noisy minute; the median of a few rarely does.
 *
 *   npx node gateway/benchmarks/summarize.ts bench-results/A.json bench-results/B.json ...
 */
import { readFileSync } from 'node:fs'
import type { Check, ResultRow, ScenarioResult } from './lib/scenario.ts'

interface RunFile {
  startedAt: string
  git: { commit: string; dirty: boolean } | null
  machine: { cpu: string | null; cores: number; kernel: string; node: string }
  options: { quick: boolean; gatewayNodeArgs: string[] }
  results: ScenarioResult[]
}

const files = process.argv.slice(2)
if (files.length === 0) {
  console.error('usage: npx node gateway/benchmarks/summarize.ts RESULT.json [RESULT.json ...]')
  process.exit(2)
}
const runs = files.map((f) => JSON.parse(readFileSync(f, 'utf8')) as RunFile)

function median(values: number[]): number {
  const finite = values.filter(Number.isFinite).sort((a, b) => a - b)
  if (finite.length === 0) return NaN
  const mid = Math.floor(finite.length / 2)
  return finite.length % 2 === 1 ? finite[mid]! : (finite[mid - 1]! + finite[mid]!) / 2
}

const fixed = (v: number, digits: number): string => (Number.isFinite(v) ? v.toFixed(digits) : '-')
const signed = (v: number): string => (Number.isFinite(v) ? `${v >= 0 ? '+' : ''}${v.toFixed(3)}` : '-')

const first = runs[0]!
const commits = [...new Set(runs.map((r) => (r.git ? `${r.git.commit.slice(0, 7)}${r.git.dirty ? '+dirty' : ''}` : 'unknown')))]
console.log(`Medians of ${runs.length} run(s) (${runs.map((r) => r.startedAt).join(', ')}); ${first.machine.cpu}, ${first.machine.cores} cores, Node ${first.machine.node}, commit ${commits.join(', ')}${first.options.quick ? ', quick mode' : ''}.`)

const scenarioNames = [...new Set(runs.flatMap((r) => r.results.map((s) => s.name)))]
for (const name of scenarioNames) {
  const instances = runs.map((r) => r.results.find((s) => s.name === name)).filter((s): s is ScenarioResult => s !== undefined && s.rows.length > 0)
  if (instances.length === 0) continue
  const title = instances[0]!.title
  console.log(`\n### ${title}\n`)
  console.log('| target | metric | p50 | p90 | p99 | p99.9 | max | req/s | added p50 | added p90 | added p99 | added p99.9 | over | CPU µs/req | RSS MiB |')
  console.log('|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|--:|--:|')
  for (const template of instances[0]!.rows) {
    const rows = instances.map((s) => s.rows.find((r) => r.target === template.target && r.metric === template.metric)).filter((r): r is ResultRow => r !== undefined)
    const m = (pick: (r: ResultRow) => number | null | undefined): number => median(rows.map((r) => pick(r) ?? NaN))
    console.log(
      `| ${template.target} | ${template.metric} | ${fixed(m((r) => r.latency.p50), 3)} | ${fixed(m((r) => r.latency.p90), 3)} | ${fixed(m((r) => r.latency.p99), 3)} | ${fixed(m((r) => r.latency.p999), 3)} | ${fixed(m((r) => r.latency.max), 3)} | ${fixed(m((r) => r.requestsPerSecond), 0)} | ${signed(m((r) => r.added?.p50))} | ${signed(m((r) => r.added?.p90))} | ${signed(m((r) => r.added?.p99))} | ${signed(m((r) => r.added?.p999))} | ${template.addedOver ?? ''} | ${fixed(m((r) => r.cost?.cpuUsPerRequest), 1)} | ${fixed(m((r) => r.cost?.rssMiB), 0)} |`,
    )
  }
  const checks = instances[0]!.checks
  if (checks.length > 0) console.log('')
  for (const template of checks) {
    const values = instances.map((s) => s.checks.find((c) => c.label === template.label)).filter((c): c is Check => c !== undefined)
    const value = median(values.map((c) => c.value))
    const limit = median(values.map((c) => c.limit))
    const pass = template.comparison === '<=' ? value <= limit : value >= limit
    const digits = template.unit === 'ms' ? 3 : template.unit === 'ratio' ? 2 : 0
    console.log(`- ${pass ? 'PASS' : 'FAIL'} ${template.label}: ${fixed(value, digits)} ${template.unit} (target ${template.comparison} ${fixed(limit, digits)}; ${values.filter((c) => c.pass).length}/${values.length} runs passed${values.some((c) => c.noisy) ? `, ${values.filter((c) => c.noisy).length} flagged noisy` : ''})`)
  }
  const other = median(instances.map((s) => s.interference.otherCores))
  if (other >= 0.1) console.log(`\nOther processes kept ${other.toFixed(2)} cores busy during this scenario (median).`)
}
