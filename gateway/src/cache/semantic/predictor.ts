/**
 * Learned per-partition hit predictor. Each partition keeps a moving average of how often a
 * semantic lookup there found a servable answer; where that rate stays below `minHitRate` the
 * embedding is skipped, except for a small exploring share that notices when hits start.
 */
import type { PredictorConfig } from '../config.ts'

interface PartitionStats {
  rate: number
  lookups: number
}

/** Partitions tracked at most; beyond, the least recently seen are forgotten. */
const MAX_PARTITIONS = 100_000

export class HitPredictor {
  readonly #config: PredictorConfig
  readonly #stats = new Map<string, PartitionStats>()
  readonly #random: () => number

  constructor(config: PredictorConfig, random: () => number = Math.random) {
    this.#config = config
    this.#random = random
  }

  shouldEmbed(partition: string): boolean {
    const c = this.#config
    if (c.minHitRate === 0) return true
    const s = this.#stats.get(partition)
    if (s === undefined || s.lookups < c.warmupLookups || s.rate >= c.minHitRate) return true
    return this.#random() < c.exploreRate
  }

  observe(partition: string, hit: boolean): void {
    let s = this.#stats.get(partition)
    if (s === undefined) {
      if (this.#stats.size >= MAX_PARTITIONS) this.#stats.delete(this.#stats.keys().next().value!)
      // Start optimistic: a fresh partition is given the benefit of the doubt until it has history.
      s = { rate: 1, lookups: 0 }
    } else {
      this.#stats.delete(partition)
    }
    this.#stats.set(partition, s)
    s.lookups++
    // Plain average during warm-up, then an exponential moving average that follows drift.
    const alpha = Math.max(this.#config.learningRate, 1 / s.lookups)
    s.rate += alpha * ((hit ? 1 : 0) - s.rate)
  }

  /** Estimated hit rate, or null for a partition without history. */
  rate(partition: string): number | null {
    return this.#stats.get(partition)?.rate ?? null
  }
}
