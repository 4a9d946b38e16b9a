/**
 * A short soak: valid traffic (streamed and not, some of it cacheable) with a share of fuzz cases
 * mixed in, for a fixed time against one gateway process. Memory is judged from a baseline taken
 * after a warm-up: resident memory must grow less than 10% over the run.
 */
import { fuzzCase, judge } from './fuzz.ts'
import { chatRequest, emptyLoad, percentile, sendOne } from './lib/load.ts'
import { startGatewayProc, startSimulatorProc } from './lib/procs.ts'
import { example, measureAfter, measureBefore, newReport, type PhaseReport } from './lib/report.ts'
import { Rng } from './lib/rng.ts'
import { exchange } from './lib/wire.ts'

export interface SoakOptions {
  seconds: number
  seed?: number
  concurrency?: number
}

const WARMUP_S = 10

export async function runSoak(opts: SoakOptions): Promise<PhaseReport> {
  const report = newReport(`soak (${opts.seconds} s)`)
  const started = performance.now()
  const sim = await startSimulatorProc('sim', ['--tokens', '16', '--inter-token-ms', '1'])
  const gw = await startGatewayProc(`
server: { host: 127.0.0.1, port: 0, requestTimeoutMs: 5000 }
log: { level: info }
upstreams:
  - { name: sim, url: ${sim.url}, models: ["*"], pool: { warm: 4 } }
cache: { enabled: true }
`, {}, { inspect: true })
  const rng = new Rng(opts.seed ?? 99)
  const load = emptyLoad()
  const rss: number[] = []
  let fuzzIndex = 0
  let stopAt = performance.now() + WARMUP_S * 1000
  let measuring = false
  const worker = async (): Promise<void> => {
    while (performance.now() < stopAt && gw.proc.exitStatus === null) {
      if (rng.chance(0.05)) {
        const c = fuzzCase(opts.seed ?? 99, fuzzIndex++)
        const r = await exchange({ port: gw.port, pieces: c.pieces, expect: c.expect, timeoutMs: 15_000, head: c.head })
        if (measuring) {
          judge(c, r, report)
          report.requests++
        }
      } else {
        await sendOne(gw.port, chatRequest(rng, { stream: rng.chance(0.5), cacheable: rng.chance(0.3) }), measuring ? load : emptyLoad(), 15_000)
      }
    }
  }
  try {
    // Warm-up: same traffic, not judged; the baseline is taken once it is over.
    await Promise.all(Array.from({ length: opts.concurrency ?? 16 }, worker))
    await measureBefore(report, gw)
    measuring = true
    stopAt = performance.now() + opts.seconds * 1000
    const sampler = setInterval(() => {
      if (gw.proc.exitStatus === null) rss.push(gw.proc.rss())
    }, 5_000)
    await Promise.all(Array.from({ length: opts.concurrency ?? 16 }, worker))
    clearInterval(sampler)
    await measureAfter(report, gw)
    if (gw.proc.exitStatus !== null) {
      report.crashes++
      example(report, `gateway exited (${gw.proc.exitStatus}): ${gw.proc.logs().slice(-1_500)}`)
    }
  } finally {
    await gw.proc.stop()
    await sim.proc.stop()
  }
  report.requests += load.requests
  report.hangs += load.hangs
  report.nonShaped += load.verdicts.bad
  report.gateway5xx += load.gateway5xx
  for (const e of load.examples) example(report, e)
  Object.assign(report.figures, {
    'valid requests': load.requests,
    ok: load.verdicts.ok,
    'requests/s': (load.requests / opts.seconds).toFixed(0),
    'p50 ms': percentile(load.latenciesMs, 50).toFixed(2),
    'p99 ms': percentile(load.latenciesMs, 99).toFixed(2),
    'RSS MB under load every 5 s': rss.map((b) => (b / 1024 / 1024).toFixed(0)).join(' '),
  })
  if (load.verdicts.ok < load.requests) report.violations.push(`${load.requests - load.verdicts.ok} valid requests did not succeed: ${JSON.stringify(load.statuses)}`)
  report.rssLimit = 0.1
  report.ms = performance.now() - started
  return report
}
