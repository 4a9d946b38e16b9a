/**
 * The load generator for latency scenarios: an undici keep-alive Pool per target, driven through the
 * raw dispatch handler API so the client adds as little (and as constant) time as possible. The same
 * code measures every target, so differences between targets are the time the middle hop adds.
 */
import { Pool } from 'undici'
import type { Dispatcher } from 'undici'
import { LatencyRecorder } from './recorder.ts'

export interface RequestSpec {
  method: 'POST' | 'GET'
  path: string
  body: Buffer | null
  headers: Record<string, string>
}

export interface Exchange {
  status: number
  /** Send to first body byte, ms. */
  firstByteMs: number
  /** Send to end of body, ms. */
  totalMs: number
  /** Body reads (socket chunks delivered to us). */
  reads: number
  /** SSE events (`data:` lines) in the body; 0 for non-streaming bodies. */
  events: number
  bytes: number
  /** Value of one response header the caller asked to keep (e.g. `x-velox-upstream`). */
  keptHeader: string | null
  /** The gateway's own account of its time (`Server-Timing: gw;dur=...`), ms; NaN when absent. */
  serverTimingGwMs: number
  /** Transport error, when the request failed before a complete response. */
  error: string | null
}

const DATA_PREFIX = Buffer.from('data:')
const ERROR_BODY_CHARS = 300

export class BenchClient {
  readonly origin: string
  readonly #pool: Pool
  readonly #keepHeader: string | null

  constructor(origin: string, options: { connections: number; keepHeader?: string }) {
    this.origin = origin
    this.#keepHeader = options.keepHeader ?? null
    this.#pool = new Pool(origin, {
      connections: options.connections,
      pipelining: 1,
      keepAliveTimeout: 60_000,
      keepAliveMaxTimeout: 600_000,
      headersTimeout: 30_000,
      bodyTimeout: 30_000,
    })
  }

  /** One request; resolves when the body has ended (errors resolve with status 0, never reject). */
  exchange(spec: RequestSpec, countEvents: boolean): Promise<Exchange> {
    const keepHeader = this.#keepHeader
    return new Promise((resolve) => {
      const start = performance.now()
      const result: Exchange = { status: 0, firstByteMs: NaN, totalMs: NaN, reads: 0, events: 0, bytes: 0, keptHeader: null, serverTimingGwMs: NaN, error: null }
      const handler: Dispatcher.DispatchHandler = {
        onRequestStart() {},
        onResponseStart(_controller, statusCode, headers) {
          result.status = statusCode
          if (keepHeader !== null) {
            const value = headers[keepHeader]
            result.keptHeader = typeof value === 'string' ? value : null
          }
          const timing = headers['server-timing']
          if (typeof timing === 'string') result.serverTimingGwMs = gatewayDuration(timing)
        },
        onResponseData(_controller, chunk) {
          if (result.reads === 0) result.firstByteMs = performance.now() - start
          result.reads++
          result.bytes += chunk.length
          if (countEvents) result.events += countOccurrences(chunk, DATA_PREFIX)
          // Keep the start of an error body: it names the failure better than the status does.
          if (result.status !== 200 && (result.error?.length ?? 0) < ERROR_BODY_CHARS) {
            result.error = ((result.error ?? '') + chunk.toString('utf8')).slice(0, ERROR_BODY_CHARS)
          }
        },
        onResponseEnd() {
          result.totalMs = performance.now() - start
          if (result.reads === 0) result.firstByteMs = result.totalMs
          resolve(result)
        },
        onResponseError(_controller, error) {
          result.status = 0
          result.totalMs = performance.now() - start
          result.error = error.message
          resolve(result)
        },
      }
      this.#pool.dispatch({ method: spec.method, path: spec.path, headers: spec.headers, body: spec.body }, handler)
    })
  }

  close(): Promise<void> {
    return this.#pool.close()
  }
}

const GW_DURATION = /(?:^|,)\s*gw;(?:[^,]*;)?\s*dur=([\d.]+)/

function gatewayDuration(serverTiming: string): number {
  const match = GW_DURATION.exec(serverTiming)
  return match ? Number(match[1]) : NaN
}

function countOccurrences(chunk: Buffer, needle: Buffer): number {
  let n = 0
  for (let i = chunk.indexOf(needle); i !== -1; i = chunk.indexOf(needle, i + needle.length)) n++
  return n
}

export interface ClosedLoopResult {
  requests: number
  errors: number
  elapsedMs: number
  /** Error detail of the first failure, for the report. */
  firstError: string | null
}

/**
 * `count` requests back to back on one connection: the latency of an otherwise idle path.
 * `serverTiming`, when given, records the gateway's self-reported time of each response that has one.
 */
export async function closedLoop(client: BenchClient, spec: RequestSpec, count: number, latency: LatencyRecorder | null, serverTiming?: LatencyRecorder): Promise<ClosedLoopResult> {
  let errors = 0
  let firstError: string | null = null
  const start = performance.now()
  for (let i = 0; i < count; i++) {
    const exchange = await client.exchange(spec, false)
    if (exchange.status !== 200) {
      errors++
      firstError ??= describeFailure(exchange)
      continue
    }
    latency?.record(exchange.totalMs)
    if (serverTiming && Number.isFinite(exchange.serverTimingGwMs)) serverTiming.record(exchange.serverTimingGwMs)
  }
  return { requests: count, errors, elapsedMs: performance.now() - start, firstError }
}

/** Throws when a warm-up saw failures: measuring a broken path would only produce noise. */
export function assertWarm(target: string, result: ClosedLoopResult): void {
  if (result.errors > 0) throw new Error(`${target}: ${result.errors} of ${result.requests} warm-up requests failed, first: ${result.firstError}`)
}

export interface StreamRecorders {
  firstByte: LatencyRecorder
  total: LatencyRecorder
}

export interface StreamLoopResult extends ClosedLoopResult {
  reads: number
  events: number
}

/** Streaming requests one at a time: time to first token (first body byte) and to the last byte. */
export async function streamLoop(client: BenchClient, spec: RequestSpec, count: number, recorders: StreamRecorders | null): Promise<StreamLoopResult> {
  let errors = 0
  let reads = 0
  let events = 0
  let firstError: string | null = null
  const start = performance.now()
  for (let i = 0; i < count; i++) {
    const exchange = await client.exchange(spec, true)
    if (exchange.status !== 200) {
      errors++
      firstError ??= describeFailure(exchange)
      continue
    }
    reads += exchange.reads
    events += exchange.events
    recorders?.firstByte.record(exchange.firstByteMs)
    recorders?.total.record(exchange.totalMs)
  }
  return { requests: count, errors, elapsedMs: performance.now() - start, firstError, reads, events }
}

export interface OpenLoopOptions {
  ratePerSecond: number
  durationMs: number
}

export interface OpenLoopResult extends ClosedLoopResult {
  /** Requests whose send was later than intended by more than 0.05 ms (the generator's own lag). */
  lateSends: number
  /** Counts of the kept response header's values (e.g. which upstream served). */
  keptHeaders: Map<string, number>
}

const SHARED = new Int32Array(new SharedArrayBuffer(4))
/** Atomics.wait overshoots by about the kernel's 50 us timer slack; wake early and spin the rest. */
const WAKE_EARLY_MS = 0.08

/**
 * Open loop at a fixed rate. Request i is due at start + i/rate whatever happened to earlier ones,
 * and its latency is measured from that intended time, so a stall shows up in every request it
 * delays (no coordinated omission).
 *
 * Node's timers have 1 ms resolution, which would add up to 1 ms of the generator's own lateness
 * to every sample. So when nothing is in flight (the common case below saturation) the generator
 * sleeps precisely with Atomics.wait until the due time; blocking the event loop is harmless then,
 * because there is no response to read. With requests in flight it yields to the event loop and
 * re-checks after every response.
 */
export function openLoop(client: BenchClient, spec: RequestSpec, options: OpenLoopOptions, latency: LatencyRecorder | null): Promise<OpenLoopResult> {
  const intervalMs = 1000 / options.ratePerSecond
  const total = Math.max(1, Math.round((options.durationMs * options.ratePerSecond) / 1000))
  const keptHeaders = new Map<string, number>()
  return new Promise((resolve) => {
    const start = performance.now() + 1
    let next = 0
    let inFlight = 0
    let completed = 0
    let errors = 0
    let lateSends = 0
    let firstError: string | null = null
    let timer: NodeJS.Timeout | null = null

    const send = (intended: number): void => {
      if (performance.now() - intended > 0.05) lateSends++
      inFlight++
      void client.exchange(spec, false).then((exchange) => {
        const done = performance.now()
        inFlight--
        completed++
        if (exchange.status === 200) {
          latency?.record(done - intended)
          if (exchange.keptHeader !== null) keptHeaders.set(exchange.keptHeader, (keptHeaders.get(exchange.keptHeader) ?? 0) + 1)
        } else {
          errors++
          firstError ??= describeFailure(exchange)
        }
        if (completed === total) {
          resolve({ requests: total, errors, elapsedMs: done - start, firstError, lateSends, keptHeaders })
        } else {
          pump()
        }
      })
    }

    const pump = (): void => {
      if (timer !== null) {
        clearTimeout(timer)
        timer = null
      }
      for (;;) {
        let now = performance.now()
        while (next < total && start + next * intervalMs <= now) {
          send(start + next * intervalMs)
          next++
          now = performance.now()
        }
        if (next >= total) return
        const due = start + next * intervalMs
        if (inFlight > 0 || due - now > 2.5) {
          timer = setTimeout(pump, Math.max(0, due - now - 1.5))
          return
        }
        sleepUntil(due)
      }
    }
    pump()
  })
}

function sleepUntil(due: number): void {
  for (let remaining = due - performance.now(); remaining > 0; remaining = due - performance.now()) {
    if (remaining > WAKE_EARLY_MS + 0.02) Atomics.wait(SHARED, 0, 0, remaining - WAKE_EARLY_MS)
  }
}

function describeFailure(exchange: Exchange): string {
  if (exchange.status === 0) return `request failed: ${exchange.error ?? 'unknown error'}`
  return exchange.error !== null ? `HTTP ${exchange.status}: ${exchange.error}` : `HTTP ${exchange.status}`
}
