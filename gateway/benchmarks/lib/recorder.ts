/**
 * Exact latency recording: every sample is kept (a few tens of thousands per run), so percentiles
 * are read from the sorted samples rather than estimated from buckets.
 */

export interface LatencySummary {
  count: number
  min: number
  mean: number
  p50: number
  p90: number
  p99: number
  p999: number
  max: number
}

/** The percentiles every table and every "added latency" row reports, in this order. */
export const PERCENTILES = [
  ['p50', 50],
  ['p90', 90],
  ['p99', 99],
  ['p999', 99.9],
] as const

export type PercentileKey = (typeof PERCENTILES)[number][0]

export class LatencyRecorder {
  #samples = new Float64Array(4096)
  #count = 0

  /** Records one sample, in milliseconds. */
  record(ms: number): void {
    if (this.#count === this.#samples.length) {
      const grown = new Float64Array(this.#samples.length * 2)
      grown.set(this.#samples)
      this.#samples = grown
    }
    this.#samples[this.#count++] = ms
  }

  get count(): number {
    return this.#count
  }

  summary(): LatencySummary {
    const sorted = this.#samples.slice(0, this.#count).sort()
    const n = sorted.length
    if (n === 0) return { count: 0, min: NaN, mean: NaN, p50: NaN, p90: NaN, p99: NaN, p999: NaN, max: NaN }
    let sum = 0
    for (let i = 0; i < n; i++) sum += sorted[i]!
    return {
      count: n,
      min: sorted[0]!,
      mean: sum / n,
      p50: nearestRank(sorted, 50),
      p90: nearestRank(sorted, 90),
      p99: nearestRank(sorted, 99),
      p999: nearestRank(sorted, 99.9),
      max: sorted[n - 1]!,
    }
  }
}

/** Nearest-rank percentile: the smallest sample with at least p% of the samples at or below it. */
function nearestRank(sorted: Float64Array, p: number): number {
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length))
  return sorted[rank - 1]!
}

/** Per-percentile difference `subject - baseline` (the latency `subject` adds on top of `baseline`). */
export function addedLatency(subject: LatencySummary, baseline: LatencySummary): Record<PercentileKey | 'max', number> {
  return {
    p50: subject.p50 - baseline.p50,
    p90: subject.p90 - baseline.p90,
    p99: subject.p99 - baseline.p99,
    p999: subject.p999 - baseline.p999,
    max: subject.max - baseline.max,
  }
}
