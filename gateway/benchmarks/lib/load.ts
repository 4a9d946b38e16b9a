/**
 * The load generator for latency scenarios: closed loop, streaming and open loop over the lean
 * HTTP/1.1 client in http1-client.ts. The same code measures every target, so differences between
 * targets are the time the middle hop adds.
 */
import { BenchClient, type Exchange, type RequestSpec } from './http1-client.ts'
import { LatencyRecorder } from './recorder.ts'

export { BenchClient, type Exchange, type RequestSpec }

/** One fixed request, or a function giving each request its own (e.g. unique bodies that never hit a cache). */
export type RequestSource = RequestSpec | (() => RequestSpec)

function nextSpec(source: RequestSource): RequestSpec {
  return typeof source === 'function' ? source() : source
}

/** Counts a response header's values (which upstream served, cache hit or miss). */
function countKept(counts: Map<string, number>, exchange: Exchange): void {
  if (exchange.keptHeader !== null) counts.set(exchange.keptHeader, (counts.get(exchange.keptHeader) ?? 0) + 1)
}

export interface ClosedLoopResult {
  requests: number
  errors: number
  elapsedMs: number
  /** Error detail of the first failure, for the report. */
  firstError: string | null
  /** Counts of the kept response header's values over successful responses. */
  keptHeaders: Map<string, number>
}

/**
 * `count` requests back to back on one connection: the latency of an otherwise idle path.
 * `serverTiming`, when given, records the gateway's self-reported time of each response that has one.
 */
export async function closedLoop(client: BenchClient, source: RequestSource, count: number, latency: LatencyRecorder | null, serverTiming?: LatencyRecorder): Promise<ClosedLoopResult> {
  let errors = 0
  let firstError: string | null = null
  const keptHeaders = new Map<string, number>()
  const start = performance.now()
  for (let i = 0; i < count; i++) {
    const exchange = await client.exchange(nextSpec(source), false)
    if (exchange.status !== 200) {
      errors++
      firstError ??= describeFailure(exchange)
      continue
    }
    latency?.record(exchange.totalMs)
    if (serverTiming && Number.isFinite(exchange.serverTimingGwMs)) serverTiming.record(exchange.serverTimingGwMs)
    countKept(keptHeaders, exchange)
  }
  return { requests: count, errors, elapsedMs: performance.now() - start, firstError, keptHeaders }
}

export interface WarmUpOptions {
  requests: number
  connections: number
  stream: boolean
}

/**
 * Drives `requests` requests through `connections` concurrent closed loops on a client of its
 * own: the fastest way to bring a process to its steady state (JIT tiers settled, heap grown),
 * which on this machine takes a gateway tens of thousands of requests, not hundreds.
 */
export async function warmUp(origin: string, source: RequestSource, options: WarmUpOptions): Promise<ClosedLoopResult> {
  const client = new BenchClient(origin, { connections: options.connections })
  const perLoop = Math.ceil(options.requests / options.connections)
  const start = performance.now()
  try {
    const loops = await Promise.all(
      Array.from({ length: options.connections }, () => (options.stream ? streamLoop(client, source, perLoop, null) : closedLoop(client, source, perLoop, null))),
    )
    return {
      requests: loops.reduce((n, l) => n + l.requests, 0),
      errors: loops.reduce((n, l) => n + l.errors, 0),
      elapsedMs: performance.now() - start,
      firstError: loops.find((l) => l.firstError !== null)?.firstError ?? null,
      keptHeaders: new Map(),
    }
  } finally {
    await client.close()
  }
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
export async function streamLoop(client: BenchClient, source: RequestSource, count: number, recorders: StreamRecorders | null): Promise<StreamLoopResult> {
  let errors = 0
  let reads = 0
  let events = 0
  let firstError: string | null = null
  const keptHeaders = new Map<string, number>()
  const start = performance.now()
  for (let i = 0; i < count; i++) {
    const exchange = await client.exchange(nextSpec(source), true)
    if (exchange.status !== 200) {
      errors++
      firstError ??= describeFailure(exchange)
      continue
    }
    reads += exchange.reads
    events += exchange.events
    recorders?.firstByte.record(exchange.firstByteMs)
    recorders?.total.record(exchange.totalMs)
    countKept(keptHeaders, exchange)
  }
  return { requests: count, errors, elapsedMs: performance.now() - start, firstError, keptHeaders, reads, events }
}

export interface OpenLoopOptions {
  ratePerSecond: number
  durationMs: number
}

export interface OpenLoopResult extends ClosedLoopResult {
  /** Requests whose send was later than intended by more than 0.05 ms (the generator's own lag). */
  lateSends: number
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
export function openLoop(client: BenchClient, source: RequestSource, options: OpenLoopOptions, latency: LatencyRecorder | null): Promise<OpenLoopResult> {
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
      void client.exchange(nextSpec(source), false).then((exchange) => {
        const done = performance.now()
        inFlight--
        completed++
        if (exchange.status === 200) {
          latency?.record(done - intended)
          countKept(keptHeaders, exchange)
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
