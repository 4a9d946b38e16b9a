/**
 * A vLLM-like inference engine on a scaled clock: what a GPU pod running vLLM does with the
 * requests it is given, close enough that a router's choices show up in time to first token the
 * way they do on real pods.
 *
 * - Continuous batching: at most `maxBatch` requests run; the rest wait in arrival order (FCFS,
 *   head of line: a request that does not fit in the KV cache holds back the ones behind it).
 * - Paged KV cache with prefix caching (see kv-cache.ts): a request is admitted only when its
 *   prompt plus its output fit; the cached leading blocks of its prompt need no prefill.
 * - Steps: each engine step decodes one token for every running request past its prefill and
 *   spends the rest of a `maxBatchedTokens` budget on prefill (chunked prefill). A step lasts
 *   stepMs + prefill tokens x prefillMsPerToken + decoding requests x decodeMsPerSeq, so prefill
 *   is proportional to the uncached prompt and decode slows as the batch grows. A request's first
 *   token comes at the end of the step that finishes its prefill.
 *
 * All times are simulated milliseconds; `timeScale` converts them to wall time (0.1: ten times
 * faster than the modelled GPU). The engine never touches sockets: requests report tokens to a sink.
 */
import { KvCache } from './kv-cache.ts'
import type { EnginePrompt } from './prompt.ts'

export interface VllmOptions {
  /** Most requests in the running batch (vLLM's max_num_seqs). */
  maxBatch?: number
  /** Tokens one step may process, decodes included (max_num_batched_tokens). */
  maxBatchedTokens?: number
  /** KV cache size in blocks. */
  kvBlocks?: number
  /** Tokens per KV block. */
  blockTokens?: number
  /** Prefill cost per uncached prompt token (simulated ms). */
  prefillMsPerToken?: number
  /** Fixed cost of every step (simulated ms). */
  stepMs?: number
  /** Extra step cost per request decoding in the batch (simulated ms). */
  decodeMsPerSeq?: number
  /** Wall ms per simulated ms. */
  timeScale?: number
}

export type ResolvedVllmOptions = Readonly<Required<VllmOptions>>

export const VLLM_DEFAULTS: ResolvedVllmOptions = Object.freeze({
  maxBatch: 32,
  maxBatchedTokens: 2048,
  kvBlocks: 4096,
  blockTokens: 16,
  prefillMsPerToken: 0.05,
  stepMs: 8,
  decodeMsPerSeq: 0.25,
  timeScale: 1,
})

export function resolveVllmOptions(opts: VllmOptions): ResolvedVllmOptions {
  const out: Record<string, number> = { ...VLLM_DEFAULTS }
  for (const [key, value] of Object.entries(opts)) {
    if (!Object.hasOwn(VLLM_DEFAULTS, key)) throw new TypeError(`unknown vllm option "${key}"`)
    if (value === undefined) continue
    const integer = key === 'maxBatch' || key === 'maxBatchedTokens' || key === 'kvBlocks' || key === 'blockTokens'
    const ok = typeof value === 'number' && Number.isFinite(value) && (integer ? Number.isSafeInteger(value) && value >= 1 : key === 'timeScale' ? value > 0 : value >= 0)
    if (!ok) throw new TypeError(`vllm option ${key} must be ${integer ? 'a positive integer' : key === 'timeScale' ? 'a positive number' : 'a non-negative number'}, got ${String(value)}`)
    out[key] = value
  }
  return Object.freeze(out) as ResolvedVllmOptions
}

/** Receives one request's progress. */
export interface EngineSink {
  /** Token `index` (0-based) of `total` was generated; the last one ends the request. */
  onToken(index: number, total: number): void
}

/** Wall-clock timer, injectable so tests can drive the engine step by step. */
export interface EngineClock {
  now(): number
  after(ms: number, fn: () => void): unknown
  cancel(handle: unknown): void
}

export const REAL_CLOCK: EngineClock = {
  now: () => performance.now(),
  after: (ms, fn) => setTimeout(fn, ms),
  cancel: (handle) => clearTimeout(handle as NodeJS.Timeout),
}

const WAITING = 0
const RUNNING = 1
const DONE = 2

export class EngineRequest {
  readonly prompt: EnginePrompt
  readonly outputTokens: number
  readonly sink: EngineSink
  readonly arrivedAt: number
  state: number
  blocks: Int32Array | null
  cachedTokens: number
  prefillLeft: number
  /** Prefill tokens scheduled in the current step. */
  chunk: number
  generated: number
  cancelled: boolean
  /** Wall time of the first token, 0 until then. */
  firstTokenAt: number

  constructor(prompt: EnginePrompt, outputTokens: number, sink: EngineSink, now: number) {
    this.prompt = prompt
    this.outputTokens = outputTokens
    this.sink = sink
    this.arrivedAt = now
    this.state = WAITING
    this.blocks = null
    this.cachedTokens = 0
    this.prefillLeft = prompt.tokens
    this.chunk = 0
    this.generated = 0
    this.cancelled = false
    this.firstTokenAt = 0
  }
}

export interface EngineCounters {
  promptTokens: number
  generationTokens: number
  prefixQueries: number
  prefixHits: number
  requestsFinished: number
  steps: number
}

export class VllmEngine {
  readonly options: ResolvedVllmOptions
  readonly kv: KvCache
  readonly counters: EngineCounters
  private waiting: EngineRequest[] = []
  private running: EngineRequest[] = []
  private readonly clock: EngineClock
  private timer: unknown = null
  /** Wall time the current step ends (steps are planned back to back, so timer lag does not accumulate). */
  private stepEndsAt = 0
  /** The step being planned follows the previous one without an idle gap. */
  private chained = false
  private closed = false

  constructor(options: VllmOptions = {}, clock: EngineClock = REAL_CLOCK) {
    this.options = resolveVllmOptions(options)
    this.kv = new KvCache(this.options.kvBlocks)
    this.clock = clock
    this.counters = { promptTokens: 0, generationTokens: 0, prefixQueries: 0, prefixHits: 0, requestsFinished: 0, steps: 0 }
  }

  get numRunning(): number {
    return this.running.length
  }

  get numWaiting(): number {
    return this.waiting.length
  }

  /** Fraction of KV blocks held by running requests (vLLM's kv_cache_usage_perc). */
  get kvUsage(): number {
    return this.kv.used / this.kv.totalBlocks
  }

  /** Blocks a request needs for its prompt and output. */
  blocksFor(promptTokens: number, outputTokens: number): number {
    return Math.ceil((promptTokens + outputTokens) / this.options.blockTokens)
  }

  /** Queues a request; null when it could never fit in the KV cache (vLLM refuses it with 400). */
  submit(prompt: EnginePrompt, outputTokens: number, sink: EngineSink): EngineRequest | null {
    if (this.closed || this.blocksFor(prompt.tokens, Math.max(1, outputTokens)) > this.kv.totalBlocks) return null
    const req = new EngineRequest(prompt, Math.max(1, outputTokens), sink, this.clock.now())
    this.waiting.push(req)
    if (this.timer === null) this.startStep()
    return req
  }

  /** The client went away: the request stops at the next step boundary and frees its blocks. */
  cancel(req: EngineRequest): void {
    req.cancelled = true
  }

  close(): void {
    this.closed = true
    if (this.timer !== null) this.clock.cancel(this.timer)
    this.timer = null
    for (const r of this.running) if (r.blocks !== null) this.kv.release(r.blocks)
    this.running = []
    this.waiting = []
  }

  /** Forgets the prefix cache and the counters (between benchmark runs). */
  reset(): void {
    this.kv.reset()
    const c = this.counters
    c.promptTokens = c.generationTokens = c.prefixQueries = c.prefixHits = c.requestsFinished = c.steps = 0
  }

  private startStep(): void {
    if (this.closed) return
    this.dropCancelled()
    this.admit()
    const o = this.options
    let budget = o.maxBatchedTokens
    let decoding = 0
    for (const r of this.running) {
      r.chunk = 0
      if (r.prefillLeft === 0) {
        decoding++
        budget--
      }
    }
    let prefill = 0
    for (const r of this.running) {
      if (r.prefillLeft === 0 || budget <= 0) continue
      r.chunk = r.prefillLeft < budget ? r.prefillLeft : budget
      budget -= r.chunk
      prefill += r.chunk
    }
    if (this.running.length === 0) {
      this.timer = null
      this.chained = false
      return
    }
    const durationMs = (o.stepMs + prefill * o.prefillMsPerToken + decoding * o.decodeMsPerSeq) * o.timeScale
    const now = this.clock.now()
    // A busy engine runs steps back to back on its own clock: a timer that fired late (a starved
    // event loop) delays the tokens, not the engine's capacity, and the next steps catch up.
    const start = this.chained ? this.stepEndsAt : now
    this.stepEndsAt = start + durationMs
    this.timer = this.clock.after(Math.max(0, this.stepEndsAt - now), () => this.endStep())
  }

  private endStep(): void {
    this.timer = null
    if (this.closed) return
    this.counters.steps++
    const now = this.clock.now()
    const still: EngineRequest[] = []
    for (const r of this.running) {
      if (r.cancelled) {
        this.finish(r)
        continue
      }
      let produced = false
      if (r.chunk > 0) {
        r.prefillLeft -= r.chunk
        this.counters.promptTokens += r.chunk
        if (r.prefillLeft === 0) {
          this.kv.register(r.blocks!, r.prompt.hashes, 0)
          r.firstTokenAt = now
          produced = true
        }
      } else if (r.prefillLeft === 0) {
        produced = true
      }
      if (produced) {
        const index = r.generated++
        this.counters.generationTokens++
        const last = r.generated >= r.outputTokens
        if (last) {
          this.counters.requestsFinished++
          this.finish(r)
        } else {
          still.push(r)
        }
        r.sink.onToken(index, r.outputTokens)
      } else {
        still.push(r)
      }
    }
    this.running = still
    this.chained = true
    this.startStep()
  }

  private finish(r: EngineRequest): void {
    r.state = DONE
    if (r.blocks !== null) {
      this.kv.release(r.blocks)
      r.blocks = null
    }
  }

  private dropCancelled(): void {
    if (this.running.some((r) => r.cancelled)) {
      for (const r of this.running) if (r.cancelled) this.finish(r)
      this.running = this.running.filter((r) => !r.cancelled)
    }
    if (this.waiting.some((r) => r.cancelled)) this.waiting = this.waiting.filter((r) => !r.cancelled)
  }

  /** FCFS: the head of the queue is admitted when the batch and the KV cache have room for it. */
  private admit(): void {
    const o = this.options
    let admitted = 0
    while (admitted < this.waiting.length && this.running.length < o.maxBatch) {
      const r = this.waiting[admitted]!
      const hashes = r.prompt.hashes
      const cachedBlocks = this.kv.cachedPrefix(hashes)
      const need = this.blocksFor(r.prompt.tokens, r.outputTokens)
      const blocks = this.kv.allocate(hashes, cachedBlocks, need - cachedBlocks)
      if (blocks === null) break
      // The last prompt token is always computed: its logits give the first output token.
      const cachedTokens = Math.min(cachedBlocks * o.blockTokens, r.prompt.tokens - 1)
      r.blocks = blocks
      r.cachedTokens = cachedTokens
      r.prefillLeft = r.prompt.tokens - cachedTokens
      r.state = RUNNING
      this.counters.prefixQueries += r.prompt.tokens
      this.counters.prefixHits += cachedTokens
      this.running.push(r)
      admitted++
    }
    if (admitted > 0) this.waiting = admitted === this.waiting.length ? [] : this.waiting.slice(admitted)
  }

  /** vLLM's own metric names (v1 engine), one engine, labelled with the served model. */
  metricsText(modelName: string): string {
    const labels = `{engine="0",model_name=${JSON.stringify(modelName)}}`
    const c = this.counters
    const lines: string[] = []
    const metric = (name: string, type: 'gauge' | 'counter', help: string, value: number): void => {
      // prometheus_client's text format names a counter's family with its _total suffix too.
      lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`, `${name}${labels} ${Number.isInteger(value) ? value.toFixed(1) : String(value)}`)
    }
    metric('vllm:num_requests_running', 'gauge', 'Number of requests in model execution batches.', this.running.length)
    metric('vllm:num_requests_waiting', 'gauge', 'Number of requests waiting to be processed.', this.waiting.length)
    metric('vllm:kv_cache_usage_perc', 'gauge', 'KV-cache usage. 1 means 100 percent usage.', this.kvUsage)
    metric('vllm:prefix_cache_queries_total', 'counter', 'Prefix cache queries, in terms of number of queried tokens.', c.prefixQueries)
    metric('vllm:prefix_cache_hits_total', 'counter', 'Prefix cache hits, in terms of number of cached tokens.', c.prefixHits)
    metric('vllm:prompt_tokens_total', 'counter', 'Number of prefill tokens processed.', c.promptTokens)
    metric('vllm:generation_tokens_total', 'counter', 'Number of generation tokens processed.', c.generationTokens)
    return lines.join('\n') + '\n'
  }
}
