/**
 * One target as a scenario sees it: its client, its latency recorders, its cost meter and its
 * error count, accumulated over every measured phase.
 */
import { assertWarm, BenchClient, closedLoop, streamLoop, warmUp, type ClosedLoopResult, type RequestSource } from './load.ts'
import { LatencyRecorder } from './recorder.ts'
import type { ResultRow } from './scenario.ts'
import { CostMeter, type Target, type TargetCost } from './targets.ts'

const WARM_UP_CONNECTIONS = 16
const WARM_UP_SLICES = 8

export class Lane {
  readonly target: Target
  readonly client: BenchClient
  readonly meter: CostMeter
  readonly #recorders = new Map<string, LatencyRecorder>()
  requests = 0
  errors = 0
  elapsedMs = 0
  firstError: string | null = null
  /** Values of the client's kept response header over every measured phase. */
  readonly keptHeaders = new Map<string, number>()
  /** Set by close(), once no phase remains. */
  cost: TargetCost | null = null

  constructor(target: Target, clientOptions: { connections: number; keepHeader?: string }) {
    this.target = target
    this.client = new BenchClient(target.url, clientOptions)
    this.meter = new CostMeter(target)
  }

  get name(): string {
    return this.target.name
  }

  recorder(metric: string): LatencyRecorder {
    let recorder = this.#recorders.get(metric)
    if (!recorder) {
      recorder = new LatencyRecorder()
      this.#recorders.set(metric, recorder)
    }
    return recorder
  }

  /**
   * Brings the target to its steady state with `requests` concurrent requests, then warms this
   * lane's own connection; any failure aborts the scenario (a broken path measures nothing).
   * Scenarios with several lanes use warmUpLanes, which keeps every target busy until measuring.
   */
  async warmUp(source: RequestSource, requests: number, options: { stream?: boolean } = {}): Promise<void> {
    await this.warmTarget(source, requests, options)
    await this.warmConnection(source, options)
  }

  async warmTarget(source: RequestSource, requests: number, options: { stream?: boolean } = {}): Promise<void> {
    assertWarm(this.name, await warmUp(this.target.url, source, { requests, connections: WARM_UP_CONNECTIONS, stream: options.stream ?? false }))
  }

  async warmConnection(source: RequestSource, options: { stream?: boolean } = {}): Promise<void> {
    assertWarm(this.name, options.stream ? await streamLoop(this.client, source, 5, null) : await closedLoop(this.client, source, 200, null))
  }

  /** Runs one measured phase: its cost is metered and its counts added to the lane. */
  async phase<T extends ClosedLoopResult>(run: () => Promise<T>): Promise<T> {
    const result = await this.meter.measure(run)
    this.requests += result.requests
    this.errors += result.errors
    this.elapsedMs += result.elapsedMs
    this.firstError ??= result.firstError
    for (const [value, n] of result.keptHeaders) this.keptHeaders.set(value, (this.keptHeaders.get(value) ?? 0) + n)
    return result
  }

  row(metric: string, addedOver: string | null, extra: Record<string, number | string> = {}): ResultRow {
    return {
      target: this.name,
      metric,
      latency: this.recorder(metric).summary(),
      requestsPerSecond: this.elapsedMs > 0 ? (this.requests * 1000) / this.elapsedMs : null,
      errors: this.errors,
      addedOver,
      added: null,
      cost: this.cost,
      extra,
    }
  }

  /** Share of successful measured responses whose kept header had `value`, 0..1. */
  keptShare(value: string): number {
    const ok = this.requests - this.errors
    return ok > 0 ? (this.keptHeaders.get(value) ?? 0) / ok : NaN
  }

  errorNote(): string | null {
    return this.errors > 0 ? `${this.name}: ${this.errors} failed requests, first: ${this.firstError}` : null
  }

  /** Closes the client and settles the cost report; rows read it afterwards. */
  async close(): Promise<void> {
    await this.client.close()
    this.cost = await this.meter.report()
  }
}

/**
 * Warms every lane in interleaved slices rather than one lane after the other: a gateway left idle
 * for a few seconds after its warm-up (while the other targets warm) measured a p99 two to three
 * times higher than one measured straight after, so no target may idle between warm-up and
 * measurement.
 */
export async function warmUpLanes(lanes: readonly { lane: Lane; source: RequestSource }[], requests: number, options: { stream?: boolean } = {}): Promise<void> {
  for (let slice = 0; slice < WARM_UP_SLICES; slice++) {
    for (const { lane, source } of lanes) await lane.warmTarget(source, Math.ceil(requests / WARM_UP_SLICES), options)
  }
  for (const { lane, source } of lanes) await lane.warmConnection(source, options)
}

export async function closeLanes(lanes: readonly Lane[]): Promise<void> {
  await Promise.all(lanes.map((lane) => lane.close()))
}

export function errorNotes(lanes: readonly Lane[]): string[] {
  return lanes.map((lane) => lane.errorNote()).filter((note): note is string => note !== null)
}

/** A check can only pass on clean data: any failed request fails the scenario's checks. */
export function totalErrors(lanes: readonly Lane[]): number {
  return lanes.reduce((sum, lane) => sum + lane.errors, 0)
}
