/**
 * The fuzz phase: thousands of seeded hostile requests (methods x paths, headers, bodies, framing)
 * against a real gateway process in front of a healthy simulator. Every upstream is healthy, so
 * any 5xx the gateway makes itself is a bug: client input alone must never produce one.
 */
import { generate, type FuzzCase } from './lib/cases.ts'
import type { GatewayProc } from './lib/procs.ts'
import { example, measureAfter, measureBefore, newReport, type PhaseReport } from './lib/report.ts'
import { Rng } from './lib/rng.ts'
import { exchange, gatewayCode, isOpenAIError, type WireResult } from './lib/wire.ts'

export interface FuzzOptions {
  gateway: GatewayProc
  seed: number
  requests: number
  concurrency: number
  /** A request with no complete answer within this long is a hang. */
  hangMs: number
}

/** One case, replayable on its own from the seed and its index. */
export function fuzzCase(seed: number, index: number): FuzzCase {
  return generate(new Rng(Math.imul(seed, 1_000_003) + index), index)
}

export function judge(c: FuzzCase, r: WireResult, report: PhaseReport): void {
  const fig = report.figures
  if (r.timedOut) {
    report.hangs++
    example(report, `hang (${Math.round(r.ms)} ms, ${r.responses.length}/${c.expect} answers): ${c.family} ${c.what}`)
    return
  }
  if (r.responses.length === 0) {
    report.nonShaped++
    example(report, `no answer${r.garbage ? ' (unparseable bytes)' : ''}: ${c.family} ${c.what}`)
    return
  }
  const first = r.responses[0]!
  if (c.statuses !== undefined && !c.statuses.includes(first.status)) {
    fig['wrong status'] = ((fig['wrong status'] as number | undefined) ?? 0) + 1
    example(report, `${first.status}, expected ${c.statuses.join(' or ')}: ${c.family} ${c.what}`)
  }
  for (const res of r.responses.slice(0, c.expect)) {
    const key = `status ${res.status}`
    fig[key] = ((fig[key] as number | undefined) ?? 0) + 1
    const code = gatewayCode(res.body)
    if (res.status >= 500) {
      if (code !== null || !res.headers.has('x-velox-upstream')) {
        report.gateway5xx++
        example(report, `gateway ${res.status} ${code ?? res.body.toString('utf8').slice(0, 80)}: ${c.family} ${c.what}`)
        continue
      }
      fig['upstream 5xx passed through'] = ((fig['upstream 5xx passed through'] as number | undefined) ?? 0) + 1
    }
    if (c.head) continue
    if (res.status >= 400 && !isOpenAIError(res.body)) {
      report.nonShaped++
      example(report, `${res.status} not OpenAI-shaped (${JSON.stringify(res.body.toString('utf8').slice(0, 80))}): ${c.family} ${c.what}`)
      continue
    }
    if (res.truncated) {
      report.nonShaped++
      example(report, `${res.status} body cut short: ${c.family} ${c.what}`)
      continue
    }
    const type = res.headers.get('content-type')?.[0] ?? ''
    if (res.status === 200 && type.startsWith('text/event-stream')) {
      const text = res.body.toString('utf8').trimEnd()
      if (!text.endsWith('data: [DONE]') && !/data: \{"error"[^\n]*$/.test(text) && !/event: response\.(completed|incomplete|failed)\ndata: [^\n]*$/.test(text)) {
        report.nonShaped++
        example(report, `stream without an end: ${c.family} ${c.what}`)
      }
    } else if (res.status === 200 && type.startsWith('application/json')) {
      try {
        JSON.parse(res.body.toString('utf8'))
      } catch {
        report.nonShaped++
        example(report, `200 with an unparseable JSON body: ${c.family} ${c.what}`)
      }
    }
  }
}

export async function runFuzz(opts: FuzzOptions): Promise<PhaseReport> {
  const report = newReport(`fuzz (seed ${opts.seed})`)
  const started = performance.now()
  const { gateway } = opts
  // Warm the process (JIT, pools, caches) before the baseline sample.
  await Promise.all(Array.from({ length: 8 }, async (_, w) => {
    for (let i = w; i < 400; i += 8) await exchange({ port: gateway.port, pieces: [fuzzCase(opts.seed ^ 0x5eed, i).pieces[0]!], expect: 1, timeoutMs: opts.hangMs })
  }))
  await measureBefore(report, gateway)
  let next = 0
  const families: Record<string, number> = {}
  const worker = async (): Promise<void> => {
    for (;;) {
      const i = next++
      if (i >= opts.requests || gateway.proc.exitStatus !== null) return
      const c = fuzzCase(opts.seed, i)
      families[c.family] = (families[c.family] ?? 0) + 1
      const r = await exchange({ port: gateway.port, pieces: c.pieces, expect: c.expect, timeoutMs: opts.hangMs, head: c.head })
      report.requests++
      judge(c, r, report)
    }
  }
  await Promise.all(Array.from({ length: opts.concurrency }, worker))
  if (gateway.proc.exitStatus !== null) {
    report.crashes++
    example(report, `gateway exited (${gateway.proc.exitStatus}):\n${gateway.proc.logs().slice(-2_000)}`)
  }
  await measureAfter(report, gateway)
  const wrong = report.figures['wrong status']
  if (wrong !== undefined) report.violations.push(`${wrong} answers with a status the HTTP rules forbid for the request`)
  for (const [f, n] of Object.entries(families)) report.figures[`family ${f}`] = n
  report.rssLimit = 0.1
  report.ms = performance.now() - started
  return report
}
