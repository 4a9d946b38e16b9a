/**
 * Maximum throughput with wrk (C, one thread, many connections): a Node load generator would
 * saturate its own core long before a good proxy saturates its core. wrk's Lua `done` hook prints
 * one JSON line we parse; its latencies are closed-loop and reported for information only.
 */
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { ProcessSet } from './processes.ts'

export interface WrkOptions {
  url: string
  body: string
  connections: number
  threads: number
  durationSeconds: number
  cpus: string | null
  /** Directory for the generated Lua script. */
  workDir: string
}

export interface WrkResult {
  requests: number
  durationMs: number
  requestsPerSecond: number
  /** Socket errors plus non-2xx/3xx responses. */
  errors: number
  latencyMs: { p50: number; p90: number; p99: number; p999: number; max: number; mean: number }
}

const RESULT_PREFIX = 'WRK_RESULT '

export function wrkScript(body: string): string {
  if (body.includes(']==]')) throw new Error('request body cannot be embedded in a Lua long string')
  return `wrk.method = "POST"
wrk.body = [==[${body}]==]
wrk.headers["Content-Type"] = "application/json"

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '${RESULT_PREFIX}{"requests":%d,"durationUs":%d,"errors":%d,"latencyUs":{"p50":%d,"p90":%d,"p99":%d,"p999":%d,"max":%d,"mean":%.3f}}\\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9),
    latency.max, latency.mean))
end
`
}

export async function runWrk(processes: ProcessSet, options: WrkOptions): Promise<WrkResult> {
  const script = join(options.workDir, 'post.lua')
  writeFileSync(script, wrkScript(options.body))
  const args = ['-t', String(options.threads), '-c', String(options.connections), '-d', `${options.durationSeconds}s`, '--timeout', '5s', '-s', script, options.url]
  const wrk = processes.start({ name: 'wrk', command: 'wrk', args, cpus: options.cpus })
  const line = wrk.waitForLine((l) => (l.startsWith(RESULT_PREFIX) ? l.slice(RESULT_PREFIX.length) : undefined), (options.durationSeconds + 15) * 1000)
  const raw = JSON.parse(await line) as { requests: number; durationUs: number; errors: number; latencyUs: Record<string, number> }
  await wrk.exited
  const us = (key: string): number => (raw.latencyUs[key] ?? NaN) / 1000
  return {
    requests: raw.requests,
    durationMs: raw.durationUs / 1000,
    requestsPerSecond: raw.requests / (raw.durationUs / 1e6),
    errors: raw.errors,
    latencyMs: { p50: us('p50'), p90: us('p90'), p99: us('p99'), p999: us('p999'), max: us('max'), mean: us('mean') },
  }
}
