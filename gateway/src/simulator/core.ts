/** Simulator state with no I/O: settings, precomputed bodies, faults and counters. */

import { randomBytes } from 'node:crypto'
import { type ResolvedVllmOptions, type VllmOptions, VllmEngine, resolveVllmOptions } from './engine.ts'
import { type Faults, NO_FAULTS, mergeFaults, validateFaultsPatch } from './faults.ts'
import type { SimAwsCredentials } from './bedrock.ts'
import type { GenConfig } from './reply.ts'

export interface SimulatorOptions {
  host?: string
  port?: number
  /** Listed by /v1/models; requests may name any model. */
  models?: string[]
  /** Delay before the first token of a stream, or before a non-stream response. */
  ttftMs?: number
  /** Delay between streamed tokens. */
  interTokenMs?: number
  /** Completion tokens per response (per choice). */
  tokens?: number
  embeddingDim?: number
  /** Idle keep-alive timeout of client connections; 5 s like uvicorn, which serves vLLM. */
  keepAliveTimeoutMs?: number
  faults?: Partial<Faults>
  /**
   * Behave like a vLLM pod (batching, KV cache with prefix caching, engine-paced tokens, vLLM's
   * /metrics): true for the defaults, or the engine's settings. `ttftMs`/`interTokenMs` then do
   * not apply to chat and text completions.
   */
  vllm?: boolean | VllmOptions
  /**
   * AWS credentials the Bedrock wire format (`/model/{id}/converse[-stream]`) checks SigV4
   * signatures against, as Bedrock does; absent: those requests are not checked.
   */
  aws?: SimAwsCredentials
}

export interface SimulatorStats {
  requests: number
  byPath: Record<string, number>
  /** Requests in flight. */
  open: number
}

export interface ResolvedOptions {
  readonly host: string
  readonly port: number
  readonly models: readonly string[]
  readonly ttftMs: number
  readonly interTokenMs: number
  readonly tokens: number
  readonly embeddingDim: number
  readonly keepAliveTimeoutMs: number
  /** The vLLM engine's settings; null when the simulator is not in vLLM mode. */
  readonly vllm: ResolvedVllmOptions | null
  readonly aws: SimAwsCredentials | null
}

function nonNegative(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    throw new TypeError(`simulator option ${name} must be a non-negative number, got ${String(value)}`)
  }
  return value
}

function positiveInt(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new TypeError(`simulator option ${name} must be a positive integer, got ${String(value)}`)
  }
  return value
}

export function resolveOptions(opts: SimulatorOptions): ResolvedOptions {
  const models = opts.models ?? ['velox-sim-1']
  if (!Array.isArray(models) || models.length === 0 || models.some((m) => typeof m !== 'string' || m === '')) {
    throw new TypeError('simulator option models must be a non-empty array of non-empty strings')
  }
  const port = opts.port ?? 0
  if (!Number.isInteger(port) || port < 0 || port > 65_535) throw new TypeError(`simulator option port is invalid: ${port}`)
  return Object.freeze({
    host: opts.host ?? '127.0.0.1',
    port,
    models: Object.freeze([...models]),
    ttftMs: nonNegative('ttftMs', opts.ttftMs, 0),
    interTokenMs: nonNegative('interTokenMs', opts.interTokenMs, 0),
    // Zero tokens is a valid edge case (empty completions), so only reject negatives and fractions.
    tokens: opts.tokens === 0 ? 0 : positiveInt('tokens', opts.tokens, 16),
    embeddingDim: positiveInt('embeddingDim', opts.embeddingDim, 256),
    keepAliveTimeoutMs: positiveInt('keepAliveTimeoutMs', opts.keepAliveTimeoutMs, 5_000),
    vllm: opts.vllm === undefined || opts.vllm === false ? null : resolveVllmOptions(opts.vllm === true ? {} : opts.vllm),
    aws: opts.aws ?? null,
  })
}

export class SimCore {
  readonly options: ResolvedOptions
  readonly gen: GenConfig
  readonly healthBody: Buffer
  readonly modelsBody: Buffer
  readonly modelBodies: ReadonlyMap<string, Buffer>
  faults: Readonly<Faults> = NO_FAULTS
  /** Requests left before a counted `status` fault clears itself. */
  statusRemaining = 0
  seq = 0
  requests = 0
  open = 0
  byPath = new Map<string, number>()
  /** The vLLM-like engine serving chat and text completions; null outside vLLM mode. */
  readonly engine: VllmEngine | null

  constructor(options: ResolvedOptions, faults: Partial<Faults> | undefined) {
    this.options = options
    this.engine = options.vllm === null ? null : new VllmEngine(options.vllm)
    this.gen = Object.freeze({
      tokens: options.tokens,
      embeddingDim: options.embeddingDim,
      idTag: 'sim' + randomBytes(3).toString('hex'),
    })
    const created = Math.floor(Date.now() / 1000)
    const model = (id: string): object => ({ id, object: 'model', created, owned_by: 'velox-simulator' })
    this.healthBody = Buffer.from('{"status":"ok"}')
    this.modelsBody = Buffer.from(JSON.stringify({ object: 'list', data: options.models.map(model) }))
    this.modelBodies = new Map(options.models.map((id) => [id, Buffer.from(JSON.stringify(model(id)))]))
    if (faults !== undefined) this.setFaults(faults)
  }

  /** Validates and merges; throws a TypeError naming the bad key. */
  setFaults(patch: Partial<Faults>): void {
    validateFaultsPatch(patch)
    this.faults = mergeFaults(this.faults, patch)
    if (patch.statusCount !== undefined || patch.status !== undefined) this.statusRemaining = this.faults.statusCount ?? 0
  }

  clearFaults(): void {
    this.faults = NO_FAULTS
    this.statusRemaining = 0
  }

  /** The status fault for one arriving request (0 for none), spending one of `statusCount`. */
  takeStatus(): number {
    const f = this.faults
    if (f.status === null) return 0
    if (f.statusCount === null) return f.status
    if (this.statusRemaining <= 0) {
      this.faults = mergeFaults(f, { status: null, statusCount: null })
      return 0
    }
    if (--this.statusRemaining === 0) this.faults = mergeFaults(f, { status: null, statusCount: null })
    return f.status
  }

  count(path: string): void {
    this.requests++
    this.byPath.set(path, (this.byPath.get(path) ?? 0) + 1)
  }

  stats(): SimulatorStats {
    return { requests: this.requests, byPath: Object.fromEntries(this.byPath), open: this.open }
  }

  resetStats(): void {
    this.requests = 0
    this.byPath = new Map()
  }

  close(): void {
    this.engine?.close()
  }
}
