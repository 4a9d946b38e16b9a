/** Valid OpenAI traffic for the fault matrix and the soak: chat requests, streamed or not. */
import type { Rng } from './rng.ts'
import { judgeResponse, type Verdict } from './judge.ts'
import { exchange } from './wire.ts'

export interface LoadResult {
  requests: number
  verdicts: Record<Verdict, number>
  statuses: Record<string, number>
  /** Error codes seen (gateway GW_ERR_* or 'upstream error'). */
  codes: Record<string, number>
  hangs: number
  /** Connections refused or closed without any answer (expected only once a gateway stopped listening). */
  noAnswer: number
  gateway5xx: number
  examples: string[]
  latenciesMs: number[]
}

export function emptyLoad(): LoadResult {
  return { requests: 0, verdicts: { ok: 0, error: 0, 'stream-error': 0, cut: 0, bad: 0 }, statuses: {}, codes: {}, hangs: 0, noAnswer: 0, gateway5xx: 0, examples: [], latenciesMs: [] }
}

export function chatRequest(rng: Rng, opts: { stream: boolean; model?: string; cacheable?: boolean; maxTokens?: number }): Buffer {
  const body = JSON.stringify({
    model: opts.model ?? 'velox-sim-1',
    stream: opts.stream,
    ...(opts.cacheable === true ? { temperature: 0 } : {}),
    ...(opts.maxTokens !== undefined ? { max_tokens: opts.maxTokens } : {}),
    messages: [{ role: 'user', content: opts.cacheable === true ? `question ${rng.int(50)}` : `hello ${rng.text(12)}` }],
  })
  return Buffer.from(`POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`)
}

/** Sends one request and folds its outcome into `into`. */
export async function sendOne(port: number, bytes: Buffer, into: LoadResult, hangMs: number): Promise<void> {
  const r = await exchange({ port, pieces: [bytes], expect: 1, timeoutMs: hangMs })
  into.requests++
  into.latenciesMs.push(r.ms)
  if (r.timedOut) {
    into.hangs++
    if (into.examples.length < 10) into.examples.push(`hang after ${Math.round(r.ms)} ms`)
    return
  }
  const res = r.responses[0]
  if (res === undefined) {
    into.noAnswer++
    return
  }
  into.statuses[res.status] = (into.statuses[res.status] ?? 0) + 1
  const j = judgeResponse(res)
  into.verdicts[j.verdict]++
  if (j.verdict === 'error' || j.verdict === 'stream-error') into.codes[j.why] = (into.codes[j.why] ?? 0) + 1
  if (j.gateway5xx) into.gateway5xx++
  if (j.verdict === 'bad' && into.examples.length < 10) into.examples.push(j.why)
}

/** `requests` requests at `concurrency`, `streamShare` of them streamed; `during(i)` runs as request i starts. */
export async function drive(port: number, rng: Rng, opts: { requests: number; concurrency: number; streamShare: number; hangMs: number; cacheable?: boolean; during?: (i: number) => void | Promise<void> }): Promise<LoadResult> {
  const out = emptyLoad()
  let next = 0
  const worker = async (): Promise<void> => {
    for (;;) {
      const i = next++
      if (i >= opts.requests) return
      if (opts.during !== undefined) await opts.during(i)
      await sendOne(port, chatRequest(rng, { stream: rng.chance(opts.streamShare), cacheable: opts.cacheable }), out, opts.hangMs)
    }
  }
  await Promise.all(Array.from({ length: opts.concurrency }, worker))
  return out
}

export function percentile(values: number[], p: number): number {
  if (values.length === 0) return 0
  const s = [...values].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!
}
