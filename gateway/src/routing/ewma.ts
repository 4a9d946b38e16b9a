/**
 * Peak-sensitive EWMA of latency, as in Finagle's PeakEwma and tower's (linkerd2-proxy) balancer:
 * a sample above the current estimate replaces it at once, so a member that turns slow is
 * penalised on its first slow response; otherwise the estimate decays toward new samples with time
 * constant `decayMs` measured in wall time, not in sample count, so a member that is rarely chosen
 * still forgets an old spike.
 *
 * Times are milliseconds on any monotonic clock (performance.now()), the same clock for every call.
 * State lives in a Float64Array so updates write raw doubles instead of boxing a number per store.
 */
const VALUE = 0
const STAMP = 1

export class PeakEwma {
  readonly decayMs: number
  private readonly state: Float64Array

  constructor(decayMs: number, initialMs = 0) {
    if (!(decayMs > 0)) throw new RangeError(`decayMs must be positive, got ${decayMs}`)
    this.decayMs = decayMs
    this.state = new Float64Array(2)
    this.state[VALUE] = initialMs
    this.state[STAMP] = Number.NEGATIVE_INFINITY
  }

  observe(sampleMs: number, nowMs: number): void {
    const s = this.state
    const value = s[VALUE]!
    const stamp = s[STAMP]!
    if (sampleMs > value) {
      s[VALUE] = sampleMs
    } else {
      const elapsed = nowMs - stamp
      const w = elapsed > 0 ? Math.exp(-elapsed / this.decayMs) : 1
      s[VALUE] = value * w + sampleMs * (1 - w)
    }
    if (nowMs > stamp) s[STAMP] = nowMs
  }

  /** The estimate at `nowMs`: the last value decayed toward zero for the time since (Finagle reads the same way). */
  get(nowMs: number): number {
    this.observe(0, nowMs)
    return this.state[VALUE]!
  }
}
