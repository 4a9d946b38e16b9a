/**
 * A windowed latency quantile for hedging: log-spaced buckets (~5% wide, 0.1 ms to ~10 min), two
 * windows that rotate so the estimate covers the last one to two windows. Recording is one
 * Math.log and an increment; the quantile is recomputed at most every `recomputeEvery` samples.
 */
const MIN_MS = 0.1
const GROWTH = 1.05
const BUCKETS = Math.ceil(Math.log(6e6) / Math.log(GROWTH)) + 1
const LOG_GROWTH = Math.log(GROWTH)

export interface LatencyQuantileOptions {
  readonly quantile: number
  readonly windowMs?: number
  /** Samples needed across both windows before an estimate is given. */
  readonly minSamples?: number
  readonly recomputeEvery?: number
}

export class LatencyQuantile {
  readonly quantile: number
  private readonly windowMs: number
  private readonly minSamples: number
  private readonly recomputeEvery: number
  private current = new Uint32Array(BUCKETS)
  private previous = new Uint32Array(BUCKETS)
  private currentCount = 0
  private previousCount = 0
  private windowStart = 0
  private sinceRecompute = 0
  private cached = Number.NaN

  constructor(opts: LatencyQuantileOptions) {
    if (!(opts.quantile > 0 && opts.quantile < 1)) throw new RangeError('quantile must be in (0, 1)')
    this.quantile = opts.quantile
    this.windowMs = opts.windowMs ?? 10_000
    this.minSamples = opts.minSamples ?? 50
    this.recomputeEvery = opts.recomputeEvery ?? 32
  }

  record(ms: number, nowMs: number): void {
    this.rotate(nowMs)
    const i = ms <= MIN_MS ? 0 : Math.min(BUCKETS - 1, Math.ceil(Math.log(ms / MIN_MS) / LOG_GROWTH))
    this.current[i]!++
    this.currentCount++
    if (++this.sinceRecompute >= this.recomputeEvery) this.cached = Number.NaN
  }

  /** The quantile in ms (upper edge of its bucket), or null with too few samples. */
  get(nowMs: number): number | null {
    this.rotate(nowMs)
    const total = this.currentCount + this.previousCount
    if (total < this.minSamples) return null
    if (Number.isNaN(this.cached)) this.cached = this.compute(total)
    return this.cached
  }

  private compute(total: number): number {
    this.sinceRecompute = 0
    const rank = Math.ceil(this.quantile * total)
    let seen = 0
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.current[i]! + this.previous[i]!
      if (seen >= rank) return MIN_MS * GROWTH ** i
    }
    return MIN_MS * GROWTH ** (BUCKETS - 1)
  }

  private rotate(nowMs: number): void {
    const elapsed = nowMs - this.windowStart
    if (elapsed < this.windowMs) return
    // The window just finished becomes the previous one; a window that ended long ago is dropped.
    const finished = this.current
    this.current = this.previous
    this.current.fill(0)
    if (elapsed >= 2 * this.windowMs) {
      finished.fill(0)
      this.previousCount = 0
    } else {
      this.previousCount = this.currentCount
    }
    this.previous = finished
    this.currentCount = 0
    this.windowStart = nowMs
    this.cached = Number.NaN
  }
}
