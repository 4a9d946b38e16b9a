/** Prometheus metrics of the response cache, registered on the registry the gateway passes in. */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client'

export class CacheMetrics {
  readonly hits: Counter<'kind'>
  readonly misses: Counter<'kind'>
  readonly bypasses: Counter<'reason'>
  readonly similarity: Histogram
  readonly lookupSeconds: Histogram<'kind' | 'tier'>
  readonly embeddingSeconds: Histogram<'embedder'>
  readonly bytes: Gauge<'tier'>
  readonly entries: Gauge<'tier'>
  readonly evictions: Counter<'tier' | 'cause'>
  readonly stores: Counter<'kind' | 'outcome'>
  readonly redisErrors: Counter<'op'>
  readonly predictorSkips: Counter
  readonly verifications: Counter<'verifier' | 'outcome'>
  /** Read when the registry is scraped, so sizes cost nothing per request. */
  sizes: () => Record<string, { bytes: number; entries: number }> = () => ({})

  constructor(registry: Registry) {
    const registers = [registry]
    this.hits = new Counter({ name: 'velox_cache_hits_total', help: 'Requests answered from the cache', labelNames: ['kind'], registers })
    this.misses = new Counter({ name: 'velox_cache_misses_total', help: 'Cache lookups that found nothing servable', labelNames: ['kind'], registers })
    this.bypasses = new Counter({ name: 'velox_cache_bypasses_total', help: 'Requests the cache stayed out of, by reason', labelNames: ['reason'], registers })
    this.similarity = new Histogram({
      name: 'velox_cache_semantic_similarity',
      help: 'Cosine similarity of the best semantic candidate per lookup',
      buckets: [0.5, 0.7, 0.8, 0.85, 0.9, 0.92, 0.94, 0.96, 0.98, 0.99, 1],
      registers,
    })
    this.lookupSeconds = new Histogram({
      name: 'velox_cache_lookup_seconds',
      help: 'Cache lookup latency',
      labelNames: ['kind', 'tier'],
      buckets: [0.00001, 0.00005, 0.0001, 0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25],
      registers,
    })
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
    this.evictions = new Counter({ name: 'velox_cache_evictions_total', help: 'Entries dropped for space or age', labelNames: ['tier', 'cause'], registers })
    this.stores = new Counter({ name: 'velox_cache_stores_total', help: 'Responses offered to the cache, by outcome', labelNames: ['kind', 'outcome'], registers })
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
