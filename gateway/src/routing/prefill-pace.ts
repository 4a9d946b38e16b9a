/**
 * A member's learned time per prefill block (ms), robust to the odd wild sample. A first token can
 * come late for reasons that say nothing about the pod: the gateway's own event loop stalled, a
 * GC, the machine preempted the process. Taken at face value one such sample made a pod look
 * several times slower (the first sample after a lapse set the pace outright), and warm turns
 * moved off their home. So:
 *
 *   - a pace is trusted only after the median of its first `WARMUP_SAMPLES` samples (one wild
 *     sample of three cannot set it);
 *   - once trusted, each sample is clamped to [pace / CLAMP, pace x CLAMP] before the EWMA, so one
 *     sample moves the pace by at most ALPHA x (CLAMP - 1) (20%), and a real change (a pod that
 *     became slower) still shows within a few samples;
 *   - a pace not confirmed for `memoryMs` is forgotten: a member that looks slow gets fewer
 *     requests, hence fewer samples, and must be tried again rather than avoided forever; the
 *     warm-up starts over (samples older than `memoryMs` do not count toward it either).
 *
 * Plain numbers and an injected clock: no timers, deterministic.
 */

/** Weight of a new (clamped) sample in the EWMA. */
export const PACE_ALPHA = 0.2
/** Samples whose median first sets a pace. */
export const WARMUP_SAMPLES = 3
/** A trusted pace moves toward a sample at most this factor away. */
export const CLAMP = 2

export class PrefillPace {
  /** ms per block; 0 until the warm-up completes. */
  value: number
  /** Clock of the last sample (trusted or warm-up). */
  sampledAt: number
  readonly memoryMs: number
  private readonly warmup: Float64Array
  private warmupCount: number

  constructor(memoryMs: number) {
    this.value = 0
    this.sampledAt = 0
    this.memoryMs = memoryMs
    this.warmup = new Float64Array(WARMUP_SAMPLES)
    this.warmupCount = 0
  }

  /** The pace at `nowMs`, or 0 when none is trusted (never learned, or not confirmed for memoryMs). */
  get(nowMs: number): number {
    return this.value > 0 && nowMs - this.sampledAt <= this.memoryMs ? this.value : 0
  }

  /** One sample: a first token's time over the work before it (ms per block). */
  observe(sample: number, nowMs: number): void {
    if (!(sample > 0) || !Number.isFinite(sample)) return
    const current = this.get(nowMs)
    if (current > 0) {
      const clamped = sample > current * CLAMP ? current * CLAMP : sample < current / CLAMP ? current / CLAMP : sample
      this.value = current + PACE_ALPHA * (clamped - current)
      this.sampledAt = nowMs
      return
    }
    // Not trusted: collect the warm-up; what was collected before a lapse is stale.
    if (this.warmupCount > 0 && nowMs - this.sampledAt > this.memoryMs) this.warmupCount = 0
    this.value = 0
    this.warmup[this.warmupCount++] = sample
    this.sampledAt = nowMs
    if (this.warmupCount < WARMUP_SAMPLES) return
    this.value = median(this.warmup, this.warmupCount)
    this.warmupCount = 0
  }
}

function median(values: Float64Array, count: number): number {
  const v = values.slice(0, count).sort()
  const mid = count >> 1
  return count % 2 === 1 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2
}
