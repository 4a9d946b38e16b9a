/**
 * Prometheus metrics of the response cache, registered on the registry the gateway passes in.
 * The ones every request touches (hits, misses, bypasses, stores, lookup time, evictions) are
 * cells (telemetry/cells.ts): resolve a label set once with `.cell(...)`, then recording is
 * arithmetic, where prom-client's `inc({...})` builds and hashes a labels object per call.
 */
import { Counter, Gauge, Histogram, type Metric, type Registry } from 'prom-client'
import { FastCounter, FastHistogram } from '../telemetry/cells.ts'

export class CacheMetrics {
  /** Labels: kind. */
  readonly hits: FastCounter
  /** Labels: kind. */
  readonly misses: FastCounter
  /** Labels: reason. */
  readonly bypasses: FastCounter
  readonly similarity: Histogram
  /** Labels: kind, tier. */
  readonly lookupSeconds: FastHistogram
  readonly embeddingSeconds: Histogram<'embedder'>
  readonly bytes: Gauge<'tier'>
  readonly entries: Gauge<'tier'>
  /** Labels: tier, cause. */
  readonly evictions: FastCounter
  /** Labels: kind, outcome. */
  readonly stores: FastCounter
  readonly redisErrors: Counter<'op'>
  readonly predictorSkips: Counter
  readonly verifications: Counter<'verifier' | 'outcome'>
  /** Read when the registry is scraped, so sizes cost nothing per request. */
  sizes: () => Record<string, { bytes: number; entries: number }> = () => ({})

  constructor(registry: Registry) {
    const registers = [registry]
    const fast = <M extends FastCounter | FastHistogram>(m: M): M => {
      registry.registerMetric(m as unknown as Metric)
      return m
    }
    this.hits = fast(new FastCounter({ name: 'velox_cache_hits_total', help: 'Requests answered from the cache', labelNames: ['kind'] }))
    this.misses = fast(new FastCounter({ name: 'velox_cache_misses_total', help: 'Cache lookups that found nothing servable', labelNames: ['kind'] }))
    this.bypasses = fast(new FastCounter({ name: 'velox_cache_bypasses_total', help: 'Requests the cache stayed out of, by reason', labelNames: ['reason'] }))
    this.similarity = new Histogram({
      name: 'velox_cache_semantic_similarity',
      help: 'Cosine similarity of the best semantic candidate per lookup',
      buckets: [0.5, 0.7, 0.8, 0.85, 0.9, 0.92, 0.94, 0.96, 0.98, 0.99, 1],
      registers,
    })
    this.lookupSeconds = fast(new FastHistogram({
      name: 'velox_cache_lookup_seconds',
      help: 'Cache lookup latency',
      labelNames: ['kind', 'tier'],
      buckets: [0.00001, 0.00005, 0.0001, 0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25],
    }))
    this.embeddingSeconds = new Histogram({
      name: 'velox_cache_embedding_seconds',
      help: 'Time to embed one request for the semantic cache',
      labelNames: ['embedder'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
      registers,
    })
    const metrics = this
    this.bytes = new Gauge({
      name: 'velox_cache_bytes',
      help: 'Bytes held by cache entries in this process',
      labelNames: ['tier'],
      registers,
      collect() {
        for (const [tier, s] of Object.entries(metrics.sizes())) this.set({ tier }, s.bytes)
      },
    })
    this.entries = new Gauge({
      name: 'velox_cache_entries',
      help: 'Entries held in this process',
      labelNames: ['tier'],
      registers,
      collect() {
        for (const [tier, s] of Object.entries(metrics.sizes())) this.set({ tier }, s.entries)
      },
    })
    this.evictions = fast(new FastCounter({ name: 'velox_cache_evictions_total', help: 'Entries dropped for space or age', labelNames: ['tier', 'cause'] }))
    this.stores = fast(new FastCounter({ name: 'velox_cache_stores_total', help: 'Responses offered to the cache, by outcome', labelNames: ['kind', 'outcome'] }))
    this.redisErrors = new Counter({ name: 'velox_cache_redis_errors_total', help: 'Redis commands that failed or timed out', labelNames: ['op'], registers })
    this.predictorSkips = new Counter({ name: 'velox_cache_predictor_skips_total', help: 'Semantic lookups skipped by the hit predictor', registers })
    this.verifications = new Counter({
      name: 'velox_cache_verifications_total',
      help: 'Semantic candidates put to the verifier: accepted, rejected, or failed (the verifier could not answer)',
      labelNames: ['verifier', 'outcome'],
      registers,
    })
  }
}
