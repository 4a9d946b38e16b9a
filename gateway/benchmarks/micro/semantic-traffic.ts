/**
 * The semantic cache through a real gateway, reported like an information-retrieval result:
 * precision, recall and false hits per category of a labelled set, in both traffic orders.
 *
 *   npx node gateway/benchmarks/micro/semantic-traffic.ts [--set dev|test] [--order interleaved|burst-then-repeat|both]
 *        [--after-lookup] [--ttft-ms N] [--threshold X] [--out bench-results/semantic-traffic.json]
 *
 * `--set test` is the held-out set: report on it, never tune on it. By default the upstream
 * answers after `--ttft-ms` (250), so a semantic answer must beat it, as in production; with
 * `--after-lookup` the upstream answers only once the gateway's semantic lookup has decided, which
 * measures what the cache decides whatever the machine's load (and takes a fraction of the time).
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { readPairs } from '../../src/cache/semantic/evaluate.ts'
import type { TrafficOrder, TrafficReport } from '../../src/cache/semantic/traffic-eval.ts'
import { trafficEval } from '../lib/semantic-traffic.ts'

const USAGE = 'usage: npx node gateway/benchmarks/micro/semantic-traffic.ts [--set dev|test] [--order interleaved|burst-then-repeat|both] [--after-lookup] [--ttft-ms N] [--threshold X] [--out FILE]'

interface Cli {
  set: 'dev' | 'test'
  orders: TrafficOrder[]
  afterLookup: boolean
  ttftMs: number
  threshold: number | null
  out: string
}

function parseCli(argv: string[]): Cli {
  const cli: Cli = { set: 'dev', orders: ['interleaved', 'burst-then-repeat'], afterLookup: false, ttftMs: 250, threshold: null, out: 'bench-results/semantic-traffic.json' }
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!
    const value = (): string => {
      const v = argv[++i]
      if (v === undefined) throw new Error(`${flag} needs a value\n${USAGE}`)
      return v
    }
    switch (flag) {
      case '--set': {
        const v = value()
        if (v !== 'dev' && v !== 'test') throw new Error(`--set must be dev or test\n${USAGE}`)
        cli.set = v
        break
      }
      case '--order': {
        const v = value()
        if (v === 'both') cli.orders = ['interleaved', 'burst-then-repeat']
        else if (v === 'interleaved' || v === 'burst-then-repeat') cli.orders = [v]
        else throw new Error(`--order must be interleaved, burst-then-repeat or both\n${USAGE}`)
        break
      }
      case '--after-lookup':
        cli.afterLookup = true
        break
      case '--ttft-ms':
        cli.ttftMs = Number(value())
        if (!(cli.ttftMs >= 0)) throw new Error(`--ttft-ms must be a number >= 0\n${USAGE}`)
        break
      case '--threshold':
        cli.threshold = Number(value())
        if (!(cli.threshold >= 0 && cli.threshold <= 1)) throw new Error(`--threshold must be between 0 and 1\n${USAGE}`)
        break
      case '--out':
        cli.out = value()
        break
      default:
        throw new Error(`unknown option ${flag}\n${USAGE}`)
    }
  }
  return cli
}

/** One line per category: should-hit kinds by what was served, must-not-hit kinds by false hits. */
export function categoryRows(r: TrafficReport): string[][] {
  const rows: string[][] = []
  for (const [kind, k] of Object.entries(r.byKind).sort(([a], [b]) => a.localeCompare(b))) {
    if (kind.startsWith('first:')) {
      // First prompts are never probes; a hit on one is still a false hit, so it is listed when it happens.
      if (k.falseHits > 0) rows.push([kind, '-', '-', '-', String(k.falseHits)])
      continue
    }
    const shouldHit = kind.startsWith('hit:')
    const answered = k.served + k.falseHits
    rows.push([
      kind,
      String(k.probes),
      answered === 0 ? '-' : (k.served / answered).toFixed(3),
      shouldHit ? `${(k.probes === 0 ? 0 : k.served / k.probes).toFixed(3)} (${k.served}/${k.probes})` : '-',
      String(k.falseHits),
    ])
  }
  return rows
}

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)))
  const line = (r: string[]) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ')
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n')
}

async function main(): Promise<void> {
  let cli: Cli
  try {
    cli = parseCli(process.argv.slice(2))
  } catch (err) {
    console.error((err as Error).message)
    process.exitCode = 2
    return
  }
  const pairs = readPairs(fileURLToPath(new URL(`../../../test/fixtures/cache/pairs-${cli.set}.jsonl`, import.meta.url)))
  const reports: TrafficReport[] = []
  for (const order of cli.orders) {
    const started = performance.now()
    const r = await trafficEval(pairs, order, {
      upstreamAfterLookup: cli.afterLookup,
      ttftMs: cli.ttftMs,
      ...(cli.threshold === null ? {} : { semantic: { threshold: cli.threshold } }),
    })
    reports.push(r)
    console.log(`\npairs-${cli.set}, ${order}${cli.afterLookup ? ', upstream after the lookup' : `, upstream ${cli.ttftMs} ms`}: ${r.requests} requests in ${Math.round((performance.now() - started) / 1000)} s`)
    console.log(`precision ${r.precision.toFixed(3)}, recall ${r.recall.toFixed(3)} (${r.truePositives}/${r.shouldHit}), false hits ${r.falseHits}, semantic hits ${r.semanticHits}, exact hits ${r.exactHits}`)
    console.log(table(['category', 'probes', 'precision', 'recall (served)', 'false hits'], categoryRows(r)))
    for (const f of r.falseHitExamples) console.log(`  false hit: ${JSON.stringify(f.request)} served from ${JSON.stringify(f.servedFrom)}`)
  }
  mkdirSync(path.dirname(cli.out), { recursive: true })
  writeFileSync(cli.out, JSON.stringify({ node: process.version, date: new Date().toISOString(), set: cli.set, afterLookup: cli.afterLookup, ttftMs: cli.ttftMs, threshold: cli.threshold, reports: reports.map(({ log: _log, ...r }) => r) }, null, 2))
  console.log(`\nwrote ${cli.out}`)
}

await main()
