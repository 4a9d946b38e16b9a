/**
 * Slow and large clients: bodies trickled byte by byte, uploads below the minimum rate, headers
 * trickled, and bodies far over the limit. Each must get its OpenAI-shaped answer (408 or 413)
 * within its deadline, readable by the client, never a reset and never an open-ended wait.
 */
import type { GatewayProc } from './lib/procs.ts'
import { example, newReport, sampleAfter, sampleBefore, type PhaseReport } from './lib/report.ts'
import { exchange, gatewayCode, isOpenAIError, type WireResult } from './lib/wire.ts'

export interface ClientsOptions {
  gateway: GatewayProc
  /** The gateway's server.requestTimeoutMs. */
  requestTimeoutMs: number
}

const BODY = JSON.stringify({ model: 'velox-sim-1', messages: [{ role: 'user', content: 'x'.repeat(400) }] })

function head(length: number): string {
  return `POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: ${length}\r\n\r\n`
}

/** A body sent `bytesPerTick` bytes every `tickMs`, for at most `forMs`. */
function trickle(bytesPerTick: number, tickMs: number, forMs: number): Array<string | number> {
  const pieces: Array<string | number> = [head(BODY.length)]
  for (let at = 0, t = 0; at < BODY.length && t < forMs; at += bytesPerTick, t += tickMs) pieces.push(BODY.slice(at, at + bytesPerTick), tickMs)
  return pieces
}

interface Probe {
  name: string
  pieces: Array<Buffer | string | number>
  status: number
  codes: readonly string[]
  /** The answer must come within this long. */
  withinMs: number
  copies: number
}

export async function runClients(opts: ClientsOptions): Promise<PhaseReport> {
  const report = newReport('slow and large clients')
  const started = performance.now()
  const t = opts.requestTimeoutMs
  const big = Buffer.alloc(64 * 1024 * 1024, 0x20)
  const probes: Probe[] = [
    { name: 'body at 1 byte/s', pieces: trickle(1, 1_000, t * 3), status: 408, codes: ['GW_ERR_REQUEST_TIMEOUT', 'GW_ERR_BODY_TOO_SLOW'], withinMs: t + 1_500, copies: 4 },
    { name: 'body stalled after 10 bytes', pieces: [head(BODY.length), BODY.slice(0, 10), t * 3], status: 408, codes: ['GW_ERR_REQUEST_TIMEOUT', 'GW_ERR_BODY_TOO_SLOW'], withinMs: t + 1_500, copies: 4 },
    { name: 'headers at 1 byte per 100 ms', pieces: [...head(BODY.length)].flatMap((ch) => [ch, 100]), status: 408, codes: ['GW_ERR_REQUEST_TIMEOUT', 'GW_ERR_BODY_TOO_SLOW'], withinMs: t + 1_500, copies: 2 },
    { name: '64 MB body (limit 8 MB), Content-Length', pieces: [head(big.length), big], status: 413, codes: ['GW_ERR_BODY_TOO_LARGE'], withinMs: 10_000, copies: 10 },
    { name: '64 MB body (limit 8 MB), chunked', pieces: [`POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n`, ...Array.from({ length: 64 }, () => Buffer.concat([Buffer.from('100000\r\n'), big.subarray(0, 0x100000), Buffer.from('\r\n')])), '0\r\n\r\n'], status: 413, codes: ['GW_ERR_BODY_TOO_LARGE'], withinMs: 10_000, copies: 6 },
  ]
  sampleBefore(report, opts.gateway.proc)
  for (const probe of probes) {
    const results: WireResult[] = await Promise.all(Array.from({ length: probe.copies }, () => exchange({ port: opts.gateway.port, pieces: probe.pieces, expect: 1, timeoutMs: probe.withinMs + 30_000 })))
    let good = 0
    for (const r of results) {
      report.requests++
      const res = r.responses[0]
      if (r.timedOut || res === undefined) {
        if (r.timedOut) report.hangs++
        else report.nonShaped++
        example(report, `${probe.name}: ${r.timedOut ? 'no answer within the deadline' : 'closed or reset without an answer'} (${Math.round(r.ms)} ms)`)
        continue
      }
      if (!isOpenAIError(res.body)) {
        report.nonShaped++
        example(report, `${probe.name}: ${res.status} not OpenAI-shaped`)
        continue
      }
      if (res.status !== probe.status || !probe.codes.includes(gatewayCode(res.body) ?? '')) {
        report.violations.push(`${probe.name}: ${res.status} ${gatewayCode(res.body)}, expected ${probe.status} ${probe.codes.join(' or ')}`)
        continue
      }
      if (r.ms > probe.withinMs) {
        report.violations.push(`${probe.name}: answered after ${Math.round(r.ms)} ms, expected within ${probe.withinMs} ms`)
        continue
      }
      good++
    }
    report.figures[probe.name] = `${good}/${probe.copies} answered ${probe.status} in time (max ${Math.round(Math.max(...results.map((r) => r.ms)))} ms)`
  }
  sampleAfter(report, opts.gateway.proc)
  if (opts.gateway.proc.exitStatus !== null) report.crashes++
  report.ms = performance.now() - started
  return report
}
