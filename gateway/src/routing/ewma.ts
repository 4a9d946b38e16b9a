/**
 * Peak-sensitive EWMA of latency, as in Finagle's PeakEwma and tower's (linkerd2-proxy) balancer:
 * a sample above the current estimate replaces it at once, so a member that turns slow is
 * penalised on its first slow response; otherwise the estimate decays toward new samples with time
 * constant `decayMs` measured in wall time, not in sample count, so a member that is rarely chosen
 * still forgets an old spike.
 *
 * Times are milliseconds on any monotonic clock (performance.now()), the same clock for every call.
 */
export class PeakEwma {
  readonly decayMs: number
  private value: number
  private stampMs: number

  constructor(decayMs: number, initialMs = 0) {
    if (!(decayMs > 0)) throw new RangeError(`decayMs must be positive, got ${decayMs}`)
    this.decayMs = decayMs
    this.value = initialMs
    this.stampMs = Number.NEGATIVE_INFINITY
  }

  observe(sampleMs: number, nowMs: number): void {
    if (sampleMs > this.value) {
      this.value = sampleMs
    } else {
      const elapsed = nowMs - this.stampMs
      const w = elapsed > 0 ? Math.exp(-elapsed / this.decayMs) : 1
      this.value = this.value * w + sampleMs * (1 - w)
    }
    if (nowMs > this.stampMs) this.stampMs = nowMs
  }

  /** The estimate at `nowMs`: the last value decayed toward zero for the time since (Finagle reads the same way). */
  get(nowMs: number): number {
    this.observe(0, nowMs)
    return this.value
  }
}
